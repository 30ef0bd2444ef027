; Nodes a window may start at (line start) or end after (line end).
; @boundary.definition: a definition; preferred when the window start jumps.
; @boundary.statement: any statement or comment directly inside a statement list.
; @boundary.leading: comments that belong to the definition below them.

[
  (namespace_declaration)
  (file_scoped_namespace_declaration)
  (class_declaration)
  (struct_declaration)
  (interface_declaration)
  (enum_declaration)
  (record_declaration)
  (delegate_declaration)
  (method_declaration)
  (constructor_declaration)
  (destructor_declaration)
  (operator_declaration)
  (conversion_operator_declaration)
  (property_declaration)
  (indexer_declaration)
  (event_declaration)
  (local_function_statement)
] @boundary.definition

(compilation_unit (_) @boundary.statement)
(block (_) @boundary.statement)
(declaration_list (_) @boundary.statement)
(switch_body (_) @boundary.statement)
(switch_section (_) @boundary.statement)

(comment) @boundary.leading
