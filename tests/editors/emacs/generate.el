;;; generate.el --- codegemma-lsp-generate and eglot's code action, against the real server  -*- lexical-binding: t; -*-

;;; Commentary:

;; Run by tests/editors/test_emacs_generate.py (not with the *-test.el files: it needs a
;; server whose generate.model is the tiny model), which sets:
;;   CODEGEMMA_TEST_SERVER     the server command, a JSON array of strings
;;   CODEGEMMA_TEST_DIR        the project directory, holding main.py
;;   CODEGEMMA_TEST_MODEL      the instruction model's file (the tiny random model)
;;   CODEGEMMA_TEST_EVENTS     where to write eglot's events buffer at exit
;;   CODEGEMMA_TEST_RESULT     where to write what each step left in the buffer (JSON)
;; It generates three times: `codegemma-lsp-generate' below the comment, eglot's code
;; action "Generate code from this comment", and `codegemma-lsp-generate' on a region.

;;; Code:

(require 'ert)
(require 'json)
(require 'codegemma-lsp)

(defvar codegemma-gen--server nil)
(defvar codegemma-gen--results nil)
(defvar codegemma-gen--answers nil)

(defun codegemma-gen--env (name)
  (or (getenv name) (error "%s is not set" name)))

(defun codegemma-gen--wait (predicate seconds what)
  (let ((deadline (+ (float-time) seconds)))
    (while (and (not (funcall predicate)) (< (float-time) deadline))
      (accept-process-output nil 0.05))
    (unless (funcall predicate)
      (error "Timed out after %ss waiting for %s" seconds what))))

(defun codegemma-gen--finish ()
  (when (and codegemma-gen--server (getenv "CODEGEMMA_TEST_EVENTS"))
    (let ((events (ignore-errors (jsonrpc-events-buffer codegemma-gen--server))))
      (when (buffer-live-p events)
        (with-current-buffer events
          (write-region nil nil (getenv "CODEGEMMA_TEST_EVENTS") nil 'silent)))))
  (with-temp-file (codegemma-gen--env "CODEGEMMA_TEST_RESULT")
    (insert (json-encode codegemma-gen--results))))

(add-hook 'kill-emacs-hook #'codegemma-gen--finish)
(add-hook 'codegemma-lsp-generated-functions
          (lambda (answer) (push answer codegemma-gen--answers)))

(defun codegemma-gen--record (key)
  (push (cons key (buffer-substring-no-properties (point-min) (point-max)))
        codegemma-gen--results))

(defun codegemma-gen--generated (what thunk)
  "Run THUNK and wait until the buffer has changed; WHAT names the step."
  (let ((tick (buffer-chars-modified-tick)))
    (funcall thunk)
    (codegemma-gen--wait (lambda () (/= tick (buffer-chars-modified-tick))) 30 what)
    ;; The edit is applied in one go, but let eglot finish its after-change work.
    (accept-process-output nil 0.1)))

(defun codegemma-gen--goto-comment ()
  (goto-char (point-min))
  (search-forward "# list the files here"))

(condition-case err
    (progn
      (setq codegemma-lsp-command
            (append (json-read-from-string (codegemma-gen--env "CODEGEMMA_TEST_SERVER")) nil)
            codegemma-lsp-settings
            (list :generate (list :model (codegemma-gen--env "CODEGEMMA_TEST_MODEL")
                                  :maxTokens 16 :nCtx 1024)))
      (with-current-buffer
          (find-file-noselect (expand-file-name "main.py" (codegemma-gen--env "CODEGEMMA_TEST_DIR")))
        (switch-to-buffer (current-buffer))
        (transient-mark-mode 1)
        (codegemma-lsp-mode 1)
        (codegemma-gen--wait (lambda () (run-hooks 'post-command-hook) (eglot-managed-p))
                             20 "eglot to manage main.py")
        (setq codegemma-gen--server (eglot-current-server))
        (codegemma-gen--wait
         (lambda () (equal (plist-get (codegemma-lsp-status) :state) "ready"))
         20 "the model to be ready")
        (codegemma-gen--record 'before)
        (buffer-enable-undo)
        ;; 1. The command, point at the end of the comment.
        (codegemma-gen--goto-comment)
        (codegemma-gen--generated "the command's code" #'codegemma-lsp-generate)
        (codegemma-gen--record 'after_command)
        (codegemma-gen--wait (lambda () codegemma-gen--answers) 10 "the command's answer")
        (push (cons 'command_answer (car codegemma-gen--answers)) codegemma-gen--results)
        ;; 2. Eglot's code action, back on the original text.
        (erase-buffer)
        (insert (cdr (assq 'before codegemma-gen--results)))
        (codegemma-gen--goto-comment)
        (let ((titles (mapcar (lambda (a) (plist-get a :title))
                              (eglot-code-actions (point) (point) nil nil))))
          (push (cons 'action_titles (vconcat titles)) codegemma-gen--results))
        (codegemma-gen--generated
         "the code action's code"
         (lambda () (eglot-code-actions (point) (point) "refactor.rewrite" t)))
        (codegemma-gen--record 'after_action)
        ;; 3. A region: the comment's words are the instruction, and are replaced.
        (erase-buffer)
        (insert (cdr (assq 'before codegemma-gen--results)))
        (codegemma-gen--goto-comment)
        (set-mark (point))
        (search-backward "list")
        (activate-mark)
        (codegemma-gen--generated "the region's code" #'codegemma-lsp-generate)
        (codegemma-gen--record 'after_region)
        (push (cons 'ok t) codegemma-gen--results)
        (kill-emacs 0)))
  (error
   (push (cons 'error (error-message-string err)) codegemma-gen--results)
   (kill-emacs 1)))

;;; generate.el ends here
