; @import: one use declaration, `mod name;` or `extern crate`. @import.path:
; the path as written (`std::io::{self, Read}`), or the module / crate name.

(use_declaration
  argument: (_) @import.path) @import

(mod_item
  !body
  name: (identifier) @import.path) @import

(extern_crate_declaration
  name: (identifier) @import.path) @import
