; @import: one #include. @import.path: the included file; a quoted path without
; its quotes, a system header with its angle brackets (`<stdio.h>`).

(preproc_include
  path: (string_literal (string_content) @import.path)) @import

(preproc_include
  path: (system_lib_string) @import.path) @import
