; @block: a node that holds a list of statements (the file's root is one too).
; @block.opener: the token after which a new body starts.

(block) @block

(function_declaration (parameters) @block.opener)
(function_definition (parameters) @block.opener)
(if_statement "then" @block.opener)
(elseif_statement "then" @block.opener)
(else_statement "else" @block.opener)
(for_statement "do" @block.opener)
(while_statement "do" @block.opener)
(do_statement "do" @block.opener)
(repeat_statement "repeat" @block.opener)
