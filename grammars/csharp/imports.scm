; @import: one using directive. @import.path: the namespace or type it names
; (the target of an alias, not the alias).

(using_directive
  (qualified_name) @import.path) @import

(using_directive
  !name
  (identifier) @import.path) @import
