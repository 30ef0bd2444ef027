; Nodes a window may start at (line start) or end after (line end).
; @boundary.definition: a definition; preferred when the window start jumps.
; @boundary.statement: any statement or comment directly inside a statement list.
; @boundary.leading: comments that belong to the definition below them.

(function_declaration) @boundary.definition

(chunk (_) @boundary.statement)
(block (_) @boundary.statement)

(comment) @boundary.leading
