; @string: a string or character literal. @interpolation: code inside a template.

[
  (string_literal)
  (character_literal)
] @string

(string_interpolation) @interpolation
