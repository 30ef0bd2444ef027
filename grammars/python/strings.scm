; @string: a string literal. @interpolation: code inside a string (f-strings).

(string) @string

(interpolation) @interpolation
