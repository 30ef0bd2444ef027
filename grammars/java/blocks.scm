; @block: a node that holds a list of statements (the file's root is one too).
; @block.opener: the token after which a new body starts.

[
  (block)
  (class_body)
  (interface_body)
  (enum_body)
  (annotation_type_body)
  (constructor_body)
  (switch_block)
] @block

(block "{" @block.opener)
(class_body "{" @block.opener)
(interface_body "{" @block.opener)
(enum_body "{" @block.opener)
(annotation_type_body "{" @block.opener)
(constructor_body "{" @block.opener)
(switch_block "{" @block.opener)
(switch_block_statement_group (switch_label) . ":" @block.opener)
