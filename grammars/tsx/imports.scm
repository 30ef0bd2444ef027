; @import: one import (statement, re-export, require() or import() call).
; @import.path: the module specifier, without its quotes.

(import_statement
  source: (string (string_fragment) @import.path)) @import

(import_statement
  (import_require_clause
    source: (string (string_fragment) @import.path))) @import

(export_statement
  source: (string (string_fragment) @import.path)) @import

((call_expression
  function: (identifier) @_require
  arguments: (arguments . (string (string_fragment) @import.path)))
  (#eq? @_require "require")) @import

(call_expression
  function: (import)
  arguments: (arguments . (string (string_fragment) @import.path))) @import
