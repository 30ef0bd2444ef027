; Nodes a window may start at (line start) or end after (line end).
; @boundary.definition: a definition; preferred when the window start jumps.
; @boundary.statement: any statement or comment directly inside a statement list.
; @boundary.leading: comments and attributes that belong to the item below them.

[
  (function_item)
  (function_signature_item)
  (struct_item)
  (enum_item)
  (union_item)
  (impl_item)
  (trait_item)
  (mod_item)
  (macro_definition)
  (type_item)
  (const_item)
  (static_item)
] @boundary.definition

(source_file (_) @boundary.statement)
(block (_) @boundary.statement)
(declaration_list (_) @boundary.statement)
(field_declaration_list (_) @boundary.statement)
(enum_variant_list (_) @boundary.statement)
(match_block (_) @boundary.statement)

[(line_comment) (block_comment) (attribute_item)] @boundary.leading
