; @block: a node that holds a list of statements (the file's root is one too).
; @block.opener: the token after which a new, indented body starts.

(block) @block

(_ ":" @block.opener . (block))
