; @import: one import statement. @import.path: the module it names, as written
; (relative imports keep their dots). @import.name: a name imported from that
; module, which may itself be a submodule (`from . import sibling`).

(import_statement
  name: (dotted_name) @import.path) @import

(import_statement
  name: (aliased_import
    name: (dotted_name) @import.path)) @import

(import_from_statement
  module_name: (_) @import.path) @import

(import_from_statement
  name: (dotted_name) @import.name)

(import_from_statement
  name: (aliased_import
    name: (dotted_name) @import.name))
