; @string: a string literal. @interpolation: code inside a template string.

[
  (string)
  (template_string)
  (regex)
] @string

(template_substitution) @interpolation
