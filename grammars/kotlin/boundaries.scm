; Nodes a window may start at (line start) or end after (line end).
; @boundary.definition: a definition; preferred when the window start jumps.
; @boundary.statement: any statement or comment directly inside a statement list.
; @boundary.leading: comments that belong to the definition below them.

[
  (class_declaration)
  (object_declaration)
  (companion_object)
  (function_declaration)
  (secondary_constructor)
  (anonymous_initializer)
  (type_alias)
] @boundary.definition

(source_file (_) @boundary.statement)
(block (_) @boundary.statement)
(class_body (_) @boundary.statement)
(enum_class_body (_) @boundary.statement)
(lambda_literal (_) @boundary.statement)
(when_expression (when_entry) @boundary.statement)

[(line_comment) (block_comment)] @boundary.leading
