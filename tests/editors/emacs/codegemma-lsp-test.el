;;; codegemma-lsp-test.el --- ERT tests of codegemma-lsp.el against the real server  -*- lexical-binding: t; -*-

;;; Commentary:

;; Run by tests/editors/test_emacs.py, which sets:
;;   CODEGEMMA_TEST_SERVER    the server command, a JSON array of strings
;;   CODEGEMMA_TEST_DIR       an empty project directory for the test files
;;   CODEGEMMA_TEST_SCRIPTED  the file the scripted backend returns as model output
;;   CODEGEMMA_TEST_EVENTS    where to write eglot's events buffer at exit
;;
;; One server serves every test: `codegemma-test--buffer' starts it the first
;; time, the way a user would (`codegemma-lsp-mode' calling `eglot-ensure').
;; Keys go through `execute-kbd-macro', so the command loop runs the mode's
;; post-command hook and key lookup sees its menu-item filters.

;;; Code:

(require 'ert)
(require 'json)
(require 'codegemma-lsp)

(defconst codegemma-test--source "def add(a, b):\n    return a + b\n\n\n"
  "The test file; completions are asked for at its end.")

(defconst codegemma-test--expected "add(1, 2)"
  "The scripted model output, and so the completion at the end of a line.")

(defvar codegemma-test--buffer nil)
(defvar codegemma-test--server nil)

(defun codegemma-test--env (name)
  "Environment variable NAME, which must be set."
  (or (getenv name) (error "%s is not set" name)))

(defun codegemma-test--wait (predicate seconds what)
  "Process output until PREDICATE is true; fail after SECONDS saying WHAT."
  (let ((deadline (+ (float-time) seconds)))
    (while (and (not (funcall predicate)) (< (float-time) deadline))
      (accept-process-output nil 0.05))
    (unless (funcall predicate)
      (ert-fail (format "timed out after %ss waiting for: %s" seconds what)))))

(defun codegemma-test--dump-events ()
  "Write eglot's events buffer where pytest will show it on failure."
  (when (and codegemma-test--server (getenv "CODEGEMMA_TEST_EVENTS"))
    (let ((events (ignore-errors (jsonrpc-events-buffer codegemma-test--server))))
      (when (buffer-live-p events)
        (with-current-buffer events
          (write-region nil nil (getenv "CODEGEMMA_TEST_EVENTS") nil 'silent))))))

(add-hook 'kill-emacs-hook #'codegemma-test--dump-events)

(defun codegemma-test--open (name)
  "Visit NAME in the test project with `codegemma-lsp-mode' on."
  (let* ((dir (file-name-as-directory (codegemma-test--env "CODEGEMMA_TEST_DIR")))
         (file (expand-file-name name dir)))
    (unless (file-exists-p file)
      (write-region "" nil file nil 'silent))
    (with-current-buffer (find-file-noselect file)
      (codegemma-lsp-mode 1)
      (current-buffer))))

(defun codegemma-test--buffer ()
  "The Python test buffer, managed by a codegemma-lsp server whose model is ready."
  (unless (buffer-live-p codegemma-test--buffer)
    (setq codegemma-lsp-command
          (append (json-read-from-string (codegemma-test--env "CODEGEMMA_TEST_SERVER")) nil))
    (setq codegemma-test--buffer (codegemma-test--open "main.py"))
    (with-current-buffer codegemma-test--buffer
      (should (derived-mode-p 'python-mode))
      ;; `eglot-ensure' connects from the next command's post-command hook.
      (codegemma-test--wait (lambda () (run-hooks 'post-command-hook) (eglot-managed-p))
                            20 "eglot to manage the buffer")
      (setq codegemma-test--server (eglot-current-server))
      (should (cl-typep codegemma-test--server 'codegemma-lsp-server))
      (codegemma-test--wait
       (lambda () (equal (plist-get (codegemma-lsp-status) :state) "ready"))
       20 "codegemma/status ready")))
  (switch-to-buffer codegemma-test--buffer)
  codegemma-test--buffer)

(defun codegemma-test--reset (&optional text)
  "Start a test: the buffer holds TEXT (default the test source), point at its end."
  ;; Not `with-current-buffer': the test body goes on in this buffer.
  (set-buffer (codegemma-test--buffer))
  (codegemma-lsp-dismiss)
  (erase-buffer)
  (insert (or text codegemma-test--source))
  (goto-char (point-max))
  ;; Let a command see this state as its starting point.
  (setq codegemma-lsp--last-tick (buffer-chars-modified-tick)))

(defun codegemma-test--type (keys)
  "Press KEYS (a `kbd' string) through the command loop."
  (execute-kbd-macro (kbd keys)))

(defun codegemma-test--fire-idle-timer ()
  "Run the idle request the last edit scheduled (batch Emacs never goes idle)."
  (should (timerp codegemma-lsp--timer))
  (timer-event-handler codegemma-lsp--timer))

(defun codegemma-test--await-ghost ()
  "Wait for ghost text and return it."
  (codegemma-test--wait #'codegemma-lsp-visible-p 10 "ghost text")
  (codegemma-lsp-ghost-text))

(defun codegemma-test--overlay-text ()
  "The after-string of the ghost overlay at point, or nil."
  (cl-loop for overlay in (overlays-in (point) (point))
           when (overlay-get overlay 'codegemma-lsp)
           return (overlay-get overlay 'after-string)))

(defun codegemma-test--stats ()
  "The server's codegemma/stats reply."
  (jsonrpc-request codegemma-test--server :codegemma/stats (make-hash-table)))

(defun codegemma-test--await-reply (seq)
  "Wait for the reply to request SEQ (shown or not)."
  (codegemma-test--wait (lambda () (eql (car codegemma-lsp--last-reply) seq))
                        10 (format "the reply to request %s" seq)))


;;; With the server

(ert-deftest codegemma-lsp-test-ghost-text-then-tab-accepts ()
  (codegemma-test--reset)
  (codegemma-test--type "result SPC = SPC")
  (codegemma-test--fire-idle-timer)
  (should (equal (codegemma-test--await-ghost) codegemma-test--expected))
  (let ((shown (codegemma-test--overlay-text)))
    (should (equal (substring-no-properties shown) codegemma-test--expected))
    (should (eq (get-text-property 0 'face shown) 'codegemma-lsp-ghost-face)))
  ;; Ghost text is not buffer text.
  (should (equal (buffer-string) (concat codegemma-test--source "result = ")))
  (let ((accepted (plist-get (codegemma-test--stats) :accepted)))
    (should (eq (key-binding (kbd "TAB")) 'codegemma-lsp-accept))
    (codegemma-test--type "TAB")
    (should (equal (buffer-string)
                   (concat codegemma-test--source "result = " codegemma-test--expected)))
    (should (= (point) (point-max)))
    (should-not (codegemma-lsp-visible-p))
    (should-not (codegemma-test--overlay-text))
    ;; The item's command (codegemma.accept) went to the server.
    (codegemma-test--wait
     (lambda () (> (plist-get (codegemma-test--stats) :accepted) accepted))
     10 "the server to count the acceptance")))

(ert-deftest codegemma-lsp-test-typing-the-ghost-keeps-the-rest ()
  (codegemma-test--reset)
  (codegemma-test--type "result SPC = SPC")
  (codegemma-test--fire-idle-timer)
  (codegemma-test--await-ghost)
  (codegemma-test--type "a d")
  (should (equal (codegemma-lsp-ghost-text) "d(1, 2)"))
  (should (equal (substring-no-properties (codegemma-test--overlay-text)) "d(1, 2)"))
  (codegemma-test--type "TAB")
  (should (equal (buffer-string)
                 (concat codegemma-test--source "result = " codegemma-test--expected))))

;; M-f and C-e here are the mode's only while a ghost is shown.
(ert-deftest codegemma-lsp-test-accept-word-keeps-the-rest ()
  (codegemma-test--reset)
  (codegemma-test--type "result SPC = SPC")
  (codegemma-test--fire-idle-timer)
  (codegemma-test--await-ghost)
  (let ((partial (plist-get (codegemma-test--stats) :accepted_partially)))
    (should (eq (key-binding (kbd "M-f")) 'codegemma-lsp-accept-word))
    (should (eq (key-binding (kbd "C-e")) 'codegemma-lsp-accept-line))
    (codegemma-test--type "M-f")
    (should (equal (buffer-string) (concat codegemma-test--source "result = add")))
    (should (= (point) (point-max)))
    (should (equal (codegemma-lsp-ghost-text) "(1, 2)"))
    (should (equal (substring-no-properties (codegemma-test--overlay-text)) "(1, 2)"))
    ;; The item's id went to the server with codegemma.acceptPartial.
    (codegemma-test--wait
     (lambda () (> (plist-get (codegemma-test--stats) :accepted_partially) partial))
     10 "the server to count the partial accept"))
  (codegemma-test--type "C-g")
  (should (eq (key-binding (kbd "M-f")) 'forward-word)))

(ert-deftest codegemma-lsp-test-non-matching-edit-dismisses ()
  (codegemma-test--reset)
  (codegemma-test--type "result SPC = SPC")
  (codegemma-test--fire-idle-timer)
  (codegemma-test--await-ghost)
  (codegemma-test--type "x")
  (should-not (codegemma-lsp-visible-p))
  (should-not (codegemma-test--overlay-text))
  (should (equal (buffer-string) (concat codegemma-test--source "result = x")))
  ;; The edit asks again.
  (should (timerp codegemma-lsp--timer)))

(ert-deftest codegemma-lsp-test-deleting-dismisses ()
  (codegemma-test--reset)
  (codegemma-test--type "result SPC = SPC")
  (codegemma-test--fire-idle-timer)
  (codegemma-test--await-ghost)
  (codegemma-test--type "DEL")
  (should-not (codegemma-lsp-visible-p))
  (should (equal (buffer-string) (concat codegemma-test--source "result ="))))

(ert-deftest codegemma-lsp-test-moving-and-c-g-dismiss ()
  (codegemma-test--reset)
  (codegemma-test--type "result SPC = SPC")
  (codegemma-test--fire-idle-timer)
  (codegemma-test--await-ghost)
  (codegemma-test--type "C-b")
  (should-not (codegemma-lsp-visible-p))
  (codegemma-test--type "C-f")
  (codegemma-lsp-complete)
  (codegemma-test--await-ghost)
  (should (eq (key-binding (kbd "C-g")) 'codegemma-lsp-dismiss))
  (codegemma-test--type "C-g")
  (should-not (codegemma-lsp-visible-p))
  (should (equal (buffer-string) (concat codegemma-test--source "result = "))))

(ert-deftest codegemma-lsp-test-tab-without-ghost-indents ()
  (codegemma-test--reset "def f():\n")
  (should-not (codegemma-lsp-visible-p))
  (should (eq (key-binding (kbd "TAB")) 'indent-for-tab-command))
  (codegemma-test--type "TAB")
  (should (equal (buffer-string) "def f():\n    ")))

(ert-deftest codegemma-lsp-test-stale-replies-are-dropped ()
  (codegemma-test--reset (concat codegemma-test--source "result = "))
  ;; Buffer edited before the reply came (after point, so point stays).
  (let ((seq (codegemma-lsp--request)))
    (save-excursion (insert "x"))
    (codegemma-test--await-reply seq)
    (should-not (codegemma-lsp-visible-p))
    (delete-char 1))
  ;; Point moved before the reply came.
  (let ((seq (codegemma-lsp--request)))
    (backward-char)
    (codegemma-test--await-reply seq)
    (should-not (codegemma-lsp-visible-p))
    (forward-char))
  ;; A newer request supersedes an older one: only the newer one is shown.
  (should (equal (buffer-string) (concat codegemma-test--source "result = ")))
  (let* ((shown 0)
         (count (lambda (&rest _) (cl-incf shown))))
    (advice-add 'codegemma-lsp--show :before count)
    (unwind-protect
        (let* ((first (codegemma-lsp--request))
               (second (codegemma-lsp--request)))
          (should (= second (1+ first)))
          (codegemma-test--await-reply second)
          (accept-process-output nil 0.2)
          (should (= shown 1))
          (should (equal (codegemma-lsp-ghost-text) codegemma-test--expected)))
      (advice-remove 'codegemma-lsp--show count))))

(ert-deftest codegemma-lsp-test-completion-at-point ()
  "Eglot's own capf asks textDocument/completion and applies the item's edit."
  (codegemma-test--reset (concat codegemma-test--source "result = "))
  (should (memq #'eglot-completion-at-point completion-at-point-functions))
  (completion-at-point)
  (should (equal (buffer-string)
                 (concat codegemma-test--source "result = " codegemma-test--expected))))

(ert-deftest codegemma-lsp-test-mode-line-shows-ready ()
  (with-current-buffer (codegemma-test--buffer)
    (should (equal (plist-get (codegemma-lsp-status) :state) "ready"))
    (should (string-match-p "scripted:" (plist-get (codegemma-lsp-status) :model)))
    (should (equal (substring-no-properties (codegemma-lsp--lighter)) " CG"))
    ;; Batch Emacs formats no mode line: check what the mode puts there.
    (should (equal (cadr (assq 'codegemma-lsp-mode minor-mode-alist))
                   '(:eval (codegemma-lsp--lighter))))))

(ert-deftest codegemma-lsp-test-ready-asks-again-and-latency-is-kept ()
  "A completion typed for while the model loaded is asked for again once it is ready."
  (codegemma-test--reset (concat codegemma-test--source "result = "))
  (unwind-protect
      (progn
        ;; The server says it is downloading, then loading (as a first start does).
        (eglot-handle-notification codegemma-test--server 'codegemma/status
                                   :state "downloading" :model "m.gguf" :message "" :progress 42)
        (should (equal (substring-no-properties (codegemma-lsp--lighter))
                       " CG:downloading 42%"))
        (eglot-handle-notification codegemma-test--server 'codegemma/status
                                   :state "loading" :model "m.gguf" :message "")
        (should (equal (substring-no-properties (codegemma-lsp--lighter)) " CG:loading"))
        (let ((seq codegemma-lsp--request-seq))
          (eglot-handle-notification codegemma-test--server 'codegemma/status
                                     :state "ready" :model "m.gguf" :message "")
          ;; Asked on a timer, with no keystroke.
          (codegemma-test--wait (lambda () (> codegemma-lsp--request-seq seq))
                                5 "the request made when the model became ready")
          (should (equal (codegemma-test--await-ghost) codegemma-test--expected)))
        (should (null codegemma-lsp--pending))
        (should (numberp (plist-get (codegemma-lsp-status) :latency)))
        (should (string-match-p "last completion: [0-9]+ ms"
                                (get-text-property 0 'help-echo (codegemma-lsp--lighter))))
        (should (string-match-p "last completion: [0-9]+ ms"
                                (codegemma-lsp-show-status))))
    (codegemma-lsp-dismiss)
    (eglot-handle-notification codegemma-test--server 'codegemma/status
                               :state "ready" :model "scripted:" :message "")))

(ert-deftest codegemma-lsp-test-language-id-per-buffer ()
  "One server serves both buffers, and each says its own language."
  (let ((python (codegemma-test--buffer))
        (js (codegemma-test--open "app.js")))
    (unwind-protect
        (with-current-buffer js
          (should (derived-mode-p 'js-mode))
          (codegemma-test--wait (lambda () (run-hooks 'post-command-hook) (eglot-managed-p))
                                10 "eglot to manage the .js buffer")
          (should (eq (eglot-current-server) codegemma-test--server))
          (should (equal (plist-get (eglot--TextDocumentItem) :languageId) "javascript"))
          (with-current-buffer python
            (should (equal (plist-get (eglot--TextDocumentItem) :languageId) "python"))))
      (kill-buffer js))))

(ert-deftest codegemma-lsp-test-initialization-options ()
  (with-current-buffer (codegemma-test--buffer)
    (let ((codegemma-lsp-model-path "/models/cg.gguf")
          (codegemma-lsp-settings '(:model (:nCtx 2048) :completion (:maxNewTokens 32))))
      (should (equal (eglot-initialization-options codegemma-test--server)
                     '(:model (:nCtx 2048 :path "/models/cg.gguf")
                       :completion (:maxNewTokens 32)))))
    (let ((codegemma-lsp-model-path nil) (codegemma-lsp-settings nil))
      (should (equal (json-encode (eglot-initialization-options codegemma-test--server))
                     "{}")))))


;;; Without a server

(ert-deftest codegemma-lsp-test-next-part ()
  (dolist (case '(("add(1, 2)" word "add")
                  ("(1, 2)" word "(")
                  ("  héllo wörld" word "  héllo")
                  ("\n    return x" word "\n    return")
                  ("   " word "   ")
                  ("x = 1\ny = 2" line "x = 1")
                  ("\ny = 2\nz" line "\ny = 2")))
    (should (equal (codegemma-lsp--next-part (nth 0 case) (nth 1 case)) (nth 2 case)))))

(ert-deftest codegemma-lsp-test-starts-eglot-only-in-its-modes ()
  (let* ((calls nil)
         (record (lambda () (push major-mode calls))))
    (advice-add 'eglot-ensure :override record)
    (unwind-protect
        (dolist (mode '(emacs-lisp-mode python-mode))
          (with-temp-buffer
            (setq default-directory temporary-file-directory
                  buffer-file-name (expand-file-name "codegemma-nowhere"))
            (funcall mode)
            (codegemma-lsp-mode 1)
            (setq buffer-file-name nil)))
      (advice-remove 'eglot-ensure record))
    (should (equal calls '(python-mode)))))

(ert-deftest codegemma-lsp-test-registered-for-the-languages ()
  (dolist (mode '(python-mode js-mode c-mode c++-mode java-mode))
    (let ((entry (cl-find-if (lambda (entry) (eq (cdr entry) #'codegemma-lsp--contact))
                             eglot-server-programs)))
      (should entry)
      (should (assq mode (car entry)))))
  (should (equal (codegemma-lsp--contact) (cons 'codegemma-lsp-server codegemma-lsp-command))))

(ert-deftest codegemma-lsp-test-cycling-through-candidates ()
  "M-] and M-[ show the other items, skipping repeats and those typing ruled out."
  (with-current-buffer (switch-to-buffer (generate-new-buffer "cycling"))
    ;; Shown in the selected window: the command loop reads keys in its buffer.
    (codegemma-lsp-mode 1)
    (insert "x = ")
    (setq codegemma-lsp--last-tick (buffer-chars-modified-tick))
    (let ((items (vector '(:insertText "foo(1)" :command (:command "codegemma.accept"
                                                         :arguments [(:uri "u" :id 1)]))
                         '(:insertText "foo(1)")
                         '(:insertText "bar(2)" :command (:command "codegemma.accept"
                                                          :arguments [(:uri "u" :id 2)]))
                         '(:insertText "fob(3)"))))
      (codegemma-lsp--show nil (list :items items)))
    (should (equal (mapcar #'car (codegemma-lsp--ghost-choices codegemma-lsp--current))
                   '("foo(1)" "bar(2)" "fob(3)")))
    (should (eq (key-binding (kbd "M-]")) 'codegemma-lsp-next))
    (execute-kbd-macro (kbd "M-]"))
    (should (equal (codegemma-lsp-ghost-text) "bar(2)"))
    (should (equal (plist-get (codegemma-lsp--ghost-command codegemma-lsp--current) :arguments)
                   [(:uri "u" :id 2)]))
    (execute-kbd-macro (kbd "M-["))
    (should (equal (codegemma-lsp-ghost-text) "foo(1)"))
    ;; Typing "fo" keeps the ghost; cycling then skips "bar(2)", which no longer fits.
    (execute-kbd-macro (kbd "f o"))
    (should (equal (codegemma-lsp-ghost-text) "o(1)"))
    (execute-kbd-macro (kbd "M-]"))
    (should (equal (codegemma-lsp-ghost-text) "b(3)"))
    (execute-kbd-macro (kbd "M-]"))
    (should (equal (codegemma-lsp-ghost-text) "o(1)"))
    (codegemma-lsp-mode -1)
    (should-not (codegemma-lsp-visible-p))
    (should-not (eq (key-binding (kbd "M-]")) (quote codegemma-lsp-next)))
    (kill-buffer)))

(ert-deftest codegemma-lsp-test-typing-rhythm-sets-the-delay ()
  (dolist (case '((() 0.2)                                   ; nothing known yet
                  ((10.0 9.9 9.8 9.7) 0.2)                   ; fewer than five gaps
                  ((10.0 9.9 9.8 9.7 9.6 9.5) 0.2)           ; 100 ms gaps: 200 ms
                  ((10.0 9.98 9.96 9.94 9.92 9.9) 0.075)     ; very fast: the floor
                  ((10.0 9.5 9.0 8.5 8.0 7.5) 0.6)           ; slow: the ceiling
                  ((20.0 19.9 19.8 19.7 19.6 19.5 9.0) 0.2))) ; a long pause is no rhythm
    (should (< (abs (- (codegemma-lsp--typing-delay (car case)) (cadr case))) 1e-9))))

(ert-deftest codegemma-lsp-test-items-of-both-result-shapes ()
  (let ((item '(:insertText "x")))
    (should (equal (codegemma-lsp--items `(:items [,item])) (vector item)))
    (should (equal (codegemma-lsp--items (vector item)) (vector item)))
    (should (equal (codegemma-lsp--items nil) []))
    (should (equal (codegemma-lsp--insert-text '(:insertText (:kind "snippet" :value "y"))) "y"))))

(provide 'codegemma-lsp-test)
;;; codegemma-lsp-test.el ends here
