; @string: a string or character literal. @interpolation: `${...}` inside a string.

[
  (string_literal)
  (multiline_string_literal)
  (character_literal)
] @string

(interpolation) @interpolation
