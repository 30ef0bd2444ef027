; @import: one import declaration. @import.path: the imported name
; (a package for on-demand imports such as `java.io.*`).

(import_declaration
  [(scoped_identifier) (identifier)] @import.path) @import
