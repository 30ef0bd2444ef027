; Nodes a window may start at (line start) or end after (line end).
; @boundary.definition: a definition; preferred when the window start jumps.
; @boundary.statement: any statement or comment directly inside a statement list.
; @boundary.leading: comments that belong to the definition below them.

[
  (function_declaration)
  (method_declaration)
  (type_declaration)
] @boundary.definition

(source_file (_) @boundary.statement)
(statement_list (_) @boundary.statement)
(field_declaration_list (_) @boundary.statement)
(import_spec_list (_) @boundary.statement)
(expression_switch_statement [(expression_case) (default_case)] @boundary.statement)
(type_switch_statement [(type_case) (default_case)] @boundary.statement)
(select_statement [(communication_case) (default_case)] @boundary.statement)

(comment) @boundary.leading
