; @block: a node that holds a list of statements (the file's root is one too).
; @block.opener: the token after which a new body starts.

[
  (block)
  (class_body)
  (enum_class_body)
  (lambda_literal)
] @block

(block "{" @block.opener)
(class_body "{" @block.opener)
(enum_class_body "{" @block.opener)
(lambda_literal "{" @block.opener)
(lambda_literal "->" @block.opener)
(when_expression "{" @block.opener)
