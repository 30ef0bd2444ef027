; Nodes a window may start at (line start) or end after (line end).
; @boundary.definition: a definition; preferred when the window start jumps.
; @boundary.statement: any statement or comment directly inside a statement list.
; @boundary.leading: comments that belong to the definition below them.

[
  (function_definition)
  (struct_specifier body: (_))
  (union_specifier body: (_))
  (enum_specifier body: (_))
  (type_definition)
  (preproc_function_def)
] @boundary.definition

(translation_unit (_) @boundary.statement)
(compound_statement (_) @boundary.statement)
(field_declaration_list (_) @boundary.statement)
(declaration_list (_) @boundary.statement)
(case_statement (_) @boundary.statement)
(preproc_if (_) @boundary.statement)
(preproc_ifdef (_) @boundary.statement)
(preproc_else (_) @boundary.statement)
(preproc_elif (_) @boundary.statement)

(comment) @boundary.leading
