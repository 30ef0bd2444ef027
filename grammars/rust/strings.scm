; @string: a string or character literal.

[
  (string_literal)
  (raw_string_literal)
  (char_literal)
] @string
