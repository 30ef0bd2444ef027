; @block: a node that holds a list of statements (the file's root is one too).
; @block.opener: the token after which a new body starts.

[
  (statement_block)
  (class_body)
  (interface_body)
  (switch_body)
] @block

(statement_block "{" @block.opener)
(class_body "{" @block.opener)
(interface_body "{" @block.opener)
(switch_body "{" @block.opener)
(switch_case ":" @block.opener)
(switch_default ":" @block.opener)
