; @block: a node that holds a list of statements (the file's root is one too).
; @block.opener: the token after which a new body starts.

[
  (block)
  (statement_list)
  (field_declaration_list)
] @block

(block "{" @block.opener)
(field_declaration_list "{" @block.opener)
(expression_switch_statement "{" @block.opener)
(type_switch_statement "{" @block.opener)
(select_statement "{" @block.opener)
(expression_case ":" @block.opener)
(type_case ":" @block.opener)
(communication_case ":" @block.opener)
(default_case ":" @block.opener)
