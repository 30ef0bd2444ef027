; @block: a node that holds a list of statements (the file's root is one too).
; @block.opener: the token after which a new body starts.

[
  (compound_statement)
  (field_declaration_list)
  (declaration_list)
] @block

(compound_statement "{" @block.opener)
(field_declaration_list "{" @block.opener)
(declaration_list "{" @block.opener)
(case_statement ":" @block.opener)
