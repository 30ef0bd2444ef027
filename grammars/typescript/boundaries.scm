; Nodes a window may start at (line start) or end after (line end).
; @boundary.definition: a definition; preferred when the window start jumps.
; @boundary.statement: any statement or comment directly inside a statement list.
; @boundary.leading: comments that belong to the definition below them.

[
  (function_declaration)
  (generator_function_declaration)
  (function_signature)
  (class_declaration)
  (abstract_class_declaration)
  (interface_declaration)
  (type_alias_declaration)
  (enum_declaration)
  (internal_module)
  (module)
  (ambient_declaration)
  (method_definition)
  (abstract_method_signature)
] @boundary.definition

(export_statement declaration: (_)) @boundary.definition

; One pattern per value: an alternation nested this deep over-matches (tree-sitter 0.26).
(lexical_declaration (variable_declarator value: (arrow_function))) @boundary.definition
(lexical_declaration (variable_declarator value: (function_expression))) @boundary.definition
(lexical_declaration (variable_declarator value: (class))) @boundary.definition

(program (_) @boundary.statement)
(statement_block (_) @boundary.statement)
(class_body (_) @boundary.statement)
(interface_body (_) @boundary.statement)
(switch_body (_) @boundary.statement)
(switch_case body: (_) @boundary.statement)
(switch_default body: (_) @boundary.statement)

[(comment) (html_comment)] @boundary.leading
