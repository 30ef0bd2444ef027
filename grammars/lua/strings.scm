; @string: a string literal, quoted or long ([[...]]).

(string) @string
