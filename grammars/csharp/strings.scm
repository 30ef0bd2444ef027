; @string: a string or character literal. @interpolation: code inside `$"..."`.

[
  (string_literal)
  (verbatim_string_literal)
  (raw_string_literal)
  (interpolated_string_expression)
  (character_literal)
] @string

(interpolation) @interpolation
