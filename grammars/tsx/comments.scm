[(comment) (html_comment)] @comment
