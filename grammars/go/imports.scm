; @import: one import spec. @import.path: the package path, without its quotes.

(import_spec
  path: (interpreted_string_literal
    (interpreted_string_literal_content) @import.path)) @import

(import_spec
  path: (raw_string_literal
    (raw_string_literal_content) @import.path)) @import
