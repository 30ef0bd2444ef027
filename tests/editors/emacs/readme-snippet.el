;;; readme-snippet.el --- run the README's Emacs set-up as written  -*- lexical-binding: t; -*-

;;; Commentary:

;; Run by tests/editors/test_emacs.py with:
;;   CODEGEMMA_README_SNIPPET  the README's Emacs block, its paths swapped for the test's
;;   CODEGEMMA_TEST_DIR        a project directory holding main.py
;; Prints "codegemma-readme: ready MODEL" and exits 0 once the server that the
;; snippet's hook starts reports its model ready; exits 1 with the reason otherwise.

;;; Code:

(defun codegemma-readme--wait (predicate seconds what)
  "Process output until PREDICATE is true; signal an error after SECONDS saying WHAT."
  (let ((deadline (+ (float-time) seconds)))
    (while (and (not (funcall predicate)) (< (float-time) deadline))
      (accept-process-output nil 0.05))
    (unless (funcall predicate)
      (error "Timed out after %ss waiting for %s" seconds what))))

(condition-case err
    (progn
      (with-temp-buffer
        (insert (getenv "CODEGEMMA_README_SNIPPET"))
        (goto-char (point-min))
        (condition-case nil
            (while t (eval (read (current-buffer)) t))
          (end-of-file nil)))
      (with-current-buffer
          (find-file-noselect (expand-file-name "main.py" (getenv "CODEGEMMA_TEST_DIR")))
        ;; `eglot-ensure' connects from the next command's post-command hook.
        (codegemma-readme--wait (lambda () (run-hooks 'post-command-hook) (eglot-managed-p))
                                20 "eglot to manage main.py")
        (codegemma-readme--wait
         (lambda () (equal (plist-get (codegemma-lsp-status) :state) "ready"))
         30 "the model to be ready")
        (princ (format "codegemma-readme: ready %s\n"
                       (plist-get (codegemma-lsp-status) :model)))
        (kill-emacs 0)))
  (error
   (princ (format "codegemma-readme: %s\n" (error-message-string err)))
   (kill-emacs 1)))

;;; readme-snippet.el ends here
