; Nodes a window may start at (line start) or end after (line end).
; @boundary.definition: a definition; preferred when the window start jumps.
; @boundary.statement: any statement or comment directly inside a statement list.
; @boundary.leading: comments that belong to the definition below them.

[
  (class_declaration)
  (interface_declaration)
  (enum_declaration)
  (record_declaration)
  (annotation_type_declaration)
  (method_declaration)
  (constructor_declaration)
  (compact_constructor_declaration)
] @boundary.definition

(program (_) @boundary.statement)
(block (_) @boundary.statement)
(class_body (_) @boundary.statement)
(interface_body (_) @boundary.statement)
(enum_body (_) @boundary.statement)
(enum_body_declarations (_) @boundary.statement)
(annotation_type_body (_) @boundary.statement)
(constructor_body (_) @boundary.statement)
(switch_block (_) @boundary.statement)
(switch_block_statement_group (_) @boundary.statement)

[(line_comment) (block_comment)] @boundary.leading
