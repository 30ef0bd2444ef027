; @block: a node that holds a list of statements (the file's root is one too).
; @block.opener: the token after which a new body starts.

[
  (block)
  (declaration_list)
  (switch_body)
] @block

(block "{" @block.opener)
(declaration_list "{" @block.opener)
(switch_body "{" @block.opener)
(accessor_list "{" @block.opener)
