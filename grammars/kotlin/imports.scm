; @import: one import directive. @import.path: the imported name (a package
; for `import a.b.*`; the original name, not the `as` alias).

(import
  (qualified_identifier) @import.path) @import
