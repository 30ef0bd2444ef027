; @block: a node that holds a list of statements (the file's root is one too).
; @block.opener: the token after which a new body starts.

[
  (block)
  (declaration_list)
  (field_declaration_list)
  (enum_variant_list)
  (match_block)
] @block

(block "{" @block.opener)
(declaration_list "{" @block.opener)
(field_declaration_list "{" @block.opener)
(enum_variant_list "{" @block.opener)
(match_block "{" @block.opener)
