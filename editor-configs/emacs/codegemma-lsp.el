;;; codegemma-lsp.el --- CodeGemma ghost-text completion through eglot  -*- lexical-binding: t; -*-

;; Version: 0.1.0
;; Package-Requires: ((emacs "26.3") (eglot "1.9") (jsonrpc "1.0.14"))
;; Keywords: convenience, languages, tools
;; URL: https://github.com/codegemma-lsp/codegemma-lsp

;;; Commentary:

;; `codegemma-lsp-mode' shows completions from codegemma-lsp (CodeGemma run
;; locally by llama.cpp) as grey "ghost text" after point, over eglot's
;; connection to the server:
;;
;;   - after a pause in typing (`codegemma-lsp-idle-delay': by default it
;;     follows your rhythm, twice your median gap between keystrokes, from
;;     75 to 600 ms) it asks the server for `textDocument/inlineCompletion'
;;     (no eglot release has an inline-completion UI of its own, hence this
;;     file);
;;   - TAB accepts the ghost text (TAB does what it always did when there is
;;     none), M-f its next word and C-e the rest of its line (the rest stays
;;     shown), M-] and M-[ cycle through the server's candidates, C-g
;;     dismisses it, and so does any edit that does not type the ghost text's
;;     next characters;
;;   - the mode line shows whether the model is downloading (with its
;;     percentage), loading, ready, slow or failed, and "…" while a completion
;;     is on its way; its tooltip and `codegemma-lsp-show-status' give your
;;     own numbers (shown, accepted, kept 30 s later, latency); once the model
;;     is ready, a completion typed for while it loaded is asked for again.
;;
;; The same completions reach `completion-at-point' (C-M-i, Company, Corfu)
;; through eglot's own capf, which asks `textDocument/completion'.
;;
;; Loading this file adds codegemma-lsp to `eglot-server-programs' for the
;; major modes in `codegemma-lsp-modes'.  Eglot runs one server per buffer,
;; so in those modes codegemma-lsp takes the place of another language server.
;;
;; Works with eglot 1.9 (Emacs 28, GNU ELPA) up to the eglot built into
;; Emacs 29, 30 and later; see the "Eglot versions" section below.

;;; Code:

(require 'cl-lib)
(require 'subr-x)
(require 'eglot)
(require 'jsonrpc)

(defgroup codegemma-lsp nil
  "CodeGemma completions from codegemma-lsp, through eglot."
  :group 'eglot
  :prefix "codegemma-lsp-")

(defcustom codegemma-lsp-command '("codegemma-lsp")
  "How to start the server: a program and its arguments.
It is read whenever eglot starts a server, so a change applies to
the next \\[eglot] or \\[eglot-reconnect]."
  :type '(repeat string))

(defcustom codegemma-lsp-model-path nil
  "A CodeGemma GGUF file of your own, sent as initializationOptions model.path.
nil leaves the choice to the server: its command line, the
CODEGEMMA_LSP_MODEL_PATH environment variable, or else CodeGemma 2B,
which it downloads once into the Hugging Face cache."
  :type '(choice (const :tag "Server's choice" nil) file))

(defcustom codegemma-lsp-settings nil
  "Other server settings, a plist sent as initializationOptions.
For example (:completion (:maxNewTokens 32) :fim (:prefixTokens 512)).
`codegemma-lsp-model-path', when set, overrides model.path here."
  :type 'plist)

(defcustom codegemma-lsp-idle-delay 'auto
  "Seconds without typing before asking for a completion.
`auto' follows your typing rhythm: twice the median gap between your
last 20 keystrokes (gaps over a second are pauses, not rhythm), kept
between 0.075 and 0.6 seconds; 0.2 until five gaps are known."
  :type '(choice (const :tag "Follow the typing rhythm" auto) number))

(defcustom codegemma-lsp-request-timeout 30
  "Seconds to wait for a completion before giving up on it."
  :type 'number)

(defcustom codegemma-lsp-auto-start t
  "Non-nil means `codegemma-lsp-mode' starts eglot where it is not running."
  :type 'boolean)

(defcustom codegemma-lsp-modes
  '((python-mode . "python") (python-ts-mode . "python")
    (js-mode . "javascript") (js-ts-mode . "javascript")
    (js2-mode . "javascript") (rjsx-mode . "javascriptreact")
    (typescript-mode . "typescript") (typescript-ts-mode . "typescript")
    (tsx-ts-mode . "typescriptreact")
    (go-mode . "go") (go-ts-mode . "go")
    (java-mode . "java") (java-ts-mode . "java")
    (c-mode . "c") (c-ts-mode . "c")
    (c++-mode . "cpp") (c++-ts-mode . "cpp")
    (csharp-mode . "csharp") (csharp-ts-mode . "csharp")
    (kotlin-mode . "kotlin") (kotlin-ts-mode . "kotlin")
    (rust-mode . "rust") (rust-ts-mode . "rust") (rustic-mode . "rust"))
  "Major modes served by codegemma-lsp, each with its LSP language id.
Changing it takes effect after `codegemma-lsp-register'."
  :type '(alist :key-type symbol :value-type string))

(defface codegemma-lsp-ghost-face '((t :inherit shadow))
  "Face of the ghost text.")


;;; The server

(defclass codegemma-lsp-server (eglot-lsp-server) ()
  :documentation "An eglot connection to codegemma-lsp.")

(defvar codegemma-lsp--statuses (make-hash-table :test #'eq :weakness 'key)
  "The last `codegemma/status' of each server.
A plist (:state :model :message :progress).")

(defvar codegemma-lsp--latencies (make-hash-table :test #'eq :weakness 'key)
  "Seconds the last answered completion of each server took.")

(defvar codegemma-lsp--numbers (make-hash-table :test #'eq :weakness 'key)
  "(TIME . NUMBERS): the user's own numbers of each server, as of TIME.
NUMBERS is the `:user' plist of a `codegemma/stats' reply.")

(defun codegemma-lsp--contact (&optional _interactive _project)
  "The eglot contact for codegemma-lsp, read at each server start."
  (cons 'codegemma-lsp-server codegemma-lsp-command))

(defun codegemma-lsp-register ()
  "Add codegemma-lsp to `eglot-server-programs' for `codegemma-lsp-modes'.
One entry serves every mode, so a project runs one server (one
model in memory) for all its languages."
  (interactive)
  (codegemma-lsp-unregister)
  (push (cons (mapcar (lambda (entry) (list (car entry) :language-id (cdr entry)))
                      codegemma-lsp-modes)
              #'codegemma-lsp--contact)
        eglot-server-programs))

(defun codegemma-lsp-unregister ()
  "Remove codegemma-lsp from `eglot-server-programs'."
  (interactive)
  (setq eglot-server-programs
        (cl-remove #'codegemma-lsp--contact eglot-server-programs :key #'cdr)))

(defun codegemma-lsp--plist-merge (base overrides)
  "BASE with the keys of OVERRIDES set, recursively for plist values."
  (let ((merged (copy-sequence base)))
    (cl-loop for (key value) on overrides by #'cddr
             for old = (plist-get merged key)
             do (setq merged
                      (plist-put merged key
                                 (if (and (consp old) (keywordp (car old))
                                          (consp value) (keywordp (car value)))
                                     (codegemma-lsp--plist-merge old value)
                                   value))))
    merged))

(defun codegemma-lsp--initialization-options ()
  "The initializationOptions object sent to the server."
  (let ((options (codegemma-lsp--plist-merge
                  codegemma-lsp-settings
                  (and codegemma-lsp-model-path
                       (list :model (list :path (expand-file-name
                                                 codegemma-lsp-model-path)))))))
    ;; An empty plist would go out as JSON null.
    (or options (make-hash-table))))

(cl-defmethod eglot-initialization-options ((_server codegemma-lsp-server))
  "Send `codegemma-lsp-settings' and `codegemma-lsp-model-path'."
  (codegemma-lsp--initialization-options))

(cl-defmethod eglot-handle-notification
  ((server eglot-lsp-server) (_method (eql codegemma/status))
   &key state model message progress slow &allow-other-keys)
  "Keep SERVER's STATE, MODEL, MESSAGE and download PROGRESS.
The mode line shows them, and SLOW: answers have become slow, which
MESSAGE explains.  When the model becomes ready, ask again for a
completion at point: what was typed while it loaded got none."
  (let ((before (plist-get (gethash server codegemma-lsp--statuses) :state)))
    (puthash server (list :state state :model model :message message :progress progress
                          :slow (eq slow t))
             codegemma-lsp--statuses)
    (when (and (equal state "ready") (not (equal before "ready")))
      (run-at-time 0 nil #'codegemma-lsp--ask-again server)))
  (force-mode-line-update t))

(defvar codegemma-lsp--current)

(defun codegemma-lsp--ask-again (server)
  "Request a completion in the selected buffer if SERVER manages it."
  (with-current-buffer (window-buffer (selected-window))
    (when (and (bound-and-true-p codegemma-lsp-mode)
               (not codegemma-lsp--current)
               (eq (codegemma-lsp--server) server))
      (codegemma-lsp--request))))

;; Eglot 1.9 keeps one language id per server, the one of the buffer that
;; started it, and would open a .js file as "python" in a project whose
;; server a Python buffer started.  Its `eglot--language-id' is a slot
;; accessor, hence generic: answer per buffer for this server class.
;; Later eglot (1.16 has it) keeps an id per mode and `eglot--languageId'.
(when (and (not (fboundp 'eglot--languageId))
           (fboundp 'eglot--language-id)
           (cl-generic-p 'eglot--language-id))
  (cl-defmethod eglot--language-id ((_server codegemma-lsp-server))
    (or (codegemma-lsp--language-id major-mode) (cl-call-next-method))))

(defun codegemma-lsp--language-id (mode)
  "The LSP language id of major MODE, or nil."
  (cl-loop for (candidate . id) in codegemma-lsp-modes
           when (provided-mode-derived-p mode candidate) return id))

(defun codegemma-lsp--capable-p (&rest feats)
  "Whether the current server has capability FEATS (a path of keywords)."
  ;; Renamed in eglot 1.16; the old name is an obsolete alias there.
  (with-no-warnings
    (if (fboundp 'eglot-server-capable)
        (apply #'eglot-server-capable feats)
      (apply #'eglot--server-capable feats))))

(defun codegemma-lsp--server ()
  "The eglot server of this buffer when it can do inline completion."
  (and (bound-and-true-p eglot--managed-mode)
       (let ((server (eglot-current-server)))
         (and server
              (jsonrpc-running-p server)
              (codegemma-lsp--capable-p :inlineCompletionProvider)
              server))))


;;; Ghost text

(cl-defstruct (codegemma-lsp--ghost (:constructor codegemma-lsp--make-ghost)
                                    (:copier nil))
  "A completion shown after point."
  overlay  ; empty overlay at point whose after-string is the ghost text
  anchor   ; marker where the ghost starts; stays before text typed there
  origin   ; marker where it was shown: CHOICES start there
  choices  ; the server's candidates, a list of (TEXT . COMMAND), for M-] and M-[
  (index 0) ; which of CHOICES is shown
  text     ; what accepting inserts at the anchor
  end      ; marker: end of the text the item replaces (not before anchor)
  command  ; the item's LSP Command, run on accept
  server
  size     ; `buffer-size' when shown, to tell typing from other edits
  tick)    ; `buffer-chars-modified-tick' when shown

(defvar codegemma-lsp-mode)

(defvar-local codegemma-lsp--current nil
  "The `codegemma-lsp--ghost' shown in this buffer, or nil.")

(defvar-local codegemma-lsp--timer nil
  "The idle timer of the next request, or nil.")

(defvar-local codegemma-lsp--request-seq 0
  "Number of the newest request; replies to older ones are stale.")

(defvar-local codegemma-lsp--last-tick nil
  "`buffer-chars-modified-tick' after the previous command.")

(defvar-local codegemma-lsp--last-reply nil
  "(SEQ . RESULT) of the latest reply, stale or not; for debugging and tests.")

(defvar-local codegemma-lsp--pending nil
  "Number of the request on its way, for the mode line's \"…\"; nil when none.")

(defun codegemma-lsp-visible-p ()
  "Whether ghost text is shown in this buffer."
  (and codegemma-lsp--current t))

(defun codegemma-lsp-ghost-text ()
  "The ghost text shown in this buffer, or nil."
  (and codegemma-lsp--current (codegemma-lsp--ghost-text codegemma-lsp--current)))

(defun codegemma-lsp--clear ()
  "Remove the ghost text, if any."
  (when-let ((ghost codegemma-lsp--current))
    (setq codegemma-lsp--current nil)
    (delete-overlay (codegemma-lsp--ghost-overlay ghost))
    (set-marker (codegemma-lsp--ghost-anchor ghost) nil)
    (set-marker (codegemma-lsp--ghost-origin ghost) nil)
    (set-marker (codegemma-lsp--ghost-end ghost) nil)))

(defun codegemma-lsp--render (ghost)
  "Show GHOST's text after its anchor, in the selected window only."
  (let* ((overlay (codegemma-lsp--ghost-overlay ghost))
         (anchor (codegemma-lsp--ghost-anchor ghost))
         (text (propertize (codegemma-lsp--ghost-text ghost)
                           'face 'codegemma-lsp-ghost-face)))
    ;; Without it the cursor would be drawn after the ghost text.
    (put-text-property 0 1 'cursor t text)
    (move-overlay overlay anchor anchor)
    (overlay-put overlay 'after-string text)
    (overlay-put overlay 'window (selected-window))
    (overlay-put overlay 'codegemma-lsp t)))

(defun codegemma-lsp--items (result)
  "The items of an inlineCompletion RESULT (a list object, an array or null)."
  (cond ((vectorp result) result)
        ((and (consp result) (plist-member result :items))
         (plist-get result :items))
        (t [])))

(defun codegemma-lsp--insert-text (item)
  "ITEM's insertText: a string, or the value of a StringValue snippet."
  (let ((text (plist-get item :insertText)))
    (if (stringp text) text (or (plist-get text :value) ""))))

(defun codegemma-lsp--choice (item)
  "ITEM as (TEXT . COMMAND) from point, with its END, or nil when it has no rest.
A range that starts before point replaces what was typed there, which
the insert text must then start with; the rest is the ghost."
  (let* ((text (codegemma-lsp--insert-text item))
         (range (plist-get item :range))
         (beg (if range (eglot--lsp-position-to-point (plist-get range :start)) (point)))
         (end (if range (eglot--lsp-position-to-point (plist-get range :end)) (point)))
         (typed (and (<= beg (point))
                     (buffer-substring-no-properties beg (point)))))
    (when (and typed (string-prefix-p typed text)
               (> (length text) (length typed)))
      (list (cons (substring text (length typed)) (plist-get item :command)) end))))

(defun codegemma-lsp--show (server result)
  "Show the first item of SERVER's inlineCompletion RESULT at point.
The other items are kept for `codegemma-lsp-next' and `codegemma-lsp-previous'."
  (codegemma-lsp--clear)
  (let* ((found (delq nil (mapcar #'codegemma-lsp--choice (codegemma-lsp--items result))))
         (choices (cl-remove-duplicates (mapcar #'car found) :key #'car :test #'equal
                                        :from-end t)))
    (when choices
      (setq codegemma-lsp--current
            (codegemma-lsp--make-ghost
             :overlay (make-overlay (point) (point) nil t nil)
             :anchor (copy-marker (point))
             :origin (copy-marker (point))
             :choices choices
             :text (car (car choices))
             :end (copy-marker (max (cadr (car found)) (point)) t)
             :command (cdr (car choices))
             :server server
             :size (buffer-size)
             :tick (buffer-chars-modified-tick)))
      (codegemma-lsp--render codegemma-lsp--current))))

(defun codegemma-lsp--cycle (step)
  "Show the candidate STEP places on (negative: back) that fits what was typed."
  (let ((ghost codegemma-lsp--current))
    (unless ghost
      (user-error "No CodeGemma completion is shown"))
    (let* ((choices (codegemma-lsp--ghost-choices ghost))
           (count (length choices))
           (since (buffer-substring-no-properties (codegemma-lsp--ghost-origin ghost)
                                                  (codegemma-lsp--ghost-anchor ghost)))
           (index (codegemma-lsp--ghost-index ghost))
           (tries (1- count))
           found)
      (while (and (not found) (> tries 0))
        (setq index (mod (+ index step) count)
              tries (1- tries))
        (let ((choice (nth index choices)))
          (when (and (string-prefix-p since (car choice))
                     (> (length (car choice)) (length since)))
            (setq found choice))))
      (if (not found)
          (message "[codegemma-lsp] no other candidate")
        (setf (codegemma-lsp--ghost-index ghost) index
              (codegemma-lsp--ghost-text ghost) (substring (car found) (length since))
              (codegemma-lsp--ghost-command ghost) (cdr found))
        (codegemma-lsp--render ghost)))))

(defun codegemma-lsp-next ()
  "Show the server's next candidate in place of the ghost text."
  (interactive)
  (codegemma-lsp--cycle 1))

(defun codegemma-lsp-previous ()
  "Show the server's previous candidate in place of the ghost text."
  (interactive)
  (codegemma-lsp--cycle -1))

(defun codegemma-lsp--follow (ghost)
  "Whether GHOST survives the last command.
It does when the command changed neither the buffer nor point, or
when it typed GHOST's next characters: then the rest stays shown."
  (let* ((anchor (marker-position (codegemma-lsp--ghost-anchor ghost)))
         (typed-count (- (point) anchor))
         (text (codegemma-lsp--ghost-text ghost)))
    (cond
     ((and (= typed-count 0)
           (= (buffer-chars-modified-tick) (codegemma-lsp--ghost-tick ghost)))
      t)
     ((and (> typed-count 0)
           (< typed-count (length text))
           ;; Only an insertion at the anchor grows the buffer by exactly
           ;; the distance point moved (electric pairs, reindenting do not).
           (= (- (buffer-size) (codegemma-lsp--ghost-size ghost)) typed-count)
           (string-prefix-p (buffer-substring-no-properties anchor (point)) text))
      (setf (codegemma-lsp--ghost-text ghost) (substring text typed-count)
            (codegemma-lsp--ghost-size ghost) (buffer-size)
            (codegemma-lsp--ghost-tick ghost) (buffer-chars-modified-tick))
      (set-marker (codegemma-lsp--ghost-anchor ghost) (point))
      (codegemma-lsp--render ghost)
      t))))


;;; Requests

(defun codegemma-lsp--request (&optional invoked)
  "Ask the server for a completion at point; show it when it comes.
INVOKED non-nil marks an explicit request rather than one made
after typing."
  (when-let ((server (codegemma-lsp--server)))
    ;; Eglot sends edits on an idle timer of its own: flush them first, so
    ;; the server completes the text the user sees.
    (eglot--signal-textDocument/didChange)
    (let ((buffer (current-buffer))
          (seq (cl-incf codegemma-lsp--request-seq))
          (tick (buffer-chars-modified-tick))
          (pos (point))
          (started (float-time)))
      (setq codegemma-lsp--pending seq)
      (force-mode-line-update)
      (jsonrpc-async-request
       server :textDocument/inlineCompletion
       (append (eglot--TextDocumentPositionParams)
               (list :context (list :triggerKind (if invoked 1 2))))
       :success-fn
       (lambda (result)
         (puthash server (- (float-time) started) codegemma-lsp--latencies)
         (codegemma-lsp--refresh-numbers server)
         (when (buffer-live-p buffer)
           (with-current-buffer buffer
             (codegemma-lsp--done seq)
             (setq codegemma-lsp--last-reply (cons seq result))
             (when (and codegemma-lsp-mode
                        (= seq codegemma-lsp--request-seq)
                        (= tick (buffer-chars-modified-tick))
                        (= pos (point)))
               (codegemma-lsp--show server result)))))
       :error-fn
       (lambda (error)
         (when (buffer-live-p buffer)
           (with-current-buffer buffer
             (codegemma-lsp--done seq)
             (setq codegemma-lsp--last-reply (cons seq nil))))
         ;; -32800: cancelled, as the server does when a newer request comes.
         (unless (memql (plist-get error :code) '(-32800 -32801))
           (message "[codegemma-lsp] inline completion failed: %s"
                    (plist-get error :message))))
       :timeout-fn (lambda ()
                     (when (buffer-live-p buffer)
                       (with-current-buffer buffer (codegemma-lsp--done seq))))
       :timeout codegemma-lsp-request-timeout)
      seq)))

(defun codegemma-lsp--done (seq)
  "Request SEQ has an answer: drop the mode line's \"…\" if it was the last."
  (when (eql seq codegemma-lsp--pending)
    (setq codegemma-lsp--pending nil)
    (force-mode-line-update)))

(defun codegemma-lsp--on-idle (buffer)
  "The idle timer's job: request a completion if BUFFER is still current."
  (when (and (buffer-live-p buffer) (eq buffer (current-buffer)))
    (setq codegemma-lsp--timer nil)
    (when (and codegemma-lsp-mode (not codegemma-lsp--current))
      (codegemma-lsp--request))))

(defconst codegemma-lsp--delay-bounds '(0.075 . 0.6)
  "The shortest and longest idle delay `auto' gives, in seconds.")

(defvar codegemma-lsp--keystrokes nil
  "When the latest edits were made (`float-time'), newest first; at most 21.")

(defun codegemma-lsp--typing-delay (times)
  "The idle delay for the typing rhythm in TIMES (edit times, newest first).
Twice the median gap between the last 20 keystrokes, within
`codegemma-lsp--delay-bounds'; gaps over a second are pauses, not
rhythm.  0.2 seconds until five gaps are known."
  (let ((gaps (sort (cl-loop for (newer older) on times
                             while older
                             for gap = (- newer older)
                             when (<= gap 1.0) collect gap)
                    #'<)))
    (if (< (length gaps) 5)
        0.2
      (let* ((n (length gaps))
             (median (if (cl-oddp n)
                         (nth (/ n 2) gaps)
                       (/ (+ (nth (1- (/ n 2)) gaps) (nth (/ n 2) gaps)) 2.0))))
        (max (car codegemma-lsp--delay-bounds)
             (min (cdr codegemma-lsp--delay-bounds) (* 2 median)))))))

(defun codegemma-lsp--idle-delay ()
  "Seconds of idleness before a request: the option's, or the rhythm's."
  (if (numberp codegemma-lsp-idle-delay)
      codegemma-lsp-idle-delay
    (codegemma-lsp--typing-delay codegemma-lsp--keystrokes)))

(defun codegemma-lsp--schedule ()
  "Request a completion after `codegemma-lsp--idle-delay' seconds of idleness."
  (when (timerp codegemma-lsp--timer)
    (cancel-timer codegemma-lsp--timer))
  (setq codegemma-lsp--timer
        (run-with-idle-timer (codegemma-lsp--idle-delay) nil
                             #'codegemma-lsp--on-idle (current-buffer))))

(defun codegemma-lsp--post-command ()
  "Follow or dismiss the ghost text; after an edit, schedule a request."
  (let* ((tick (buffer-chars-modified-tick))
         (edited (not (eql tick codegemma-lsp--last-tick))))
    (setq codegemma-lsp--last-tick tick)
    (when edited
      (push (float-time) codegemma-lsp--keystrokes)
      (when (nthcdr 21 codegemma-lsp--keystrokes)
        (setcdr (nthcdr 20 codegemma-lsp--keystrokes) nil)))
    (when (eq this-command 'keyboard-quit)
      ;; C-g also drops a reply still on its way.
      (cl-incf codegemma-lsp--request-seq))
    (when (and codegemma-lsp--current
               (not (codegemma-lsp--follow codegemma-lsp--current)))
      (codegemma-lsp--clear))
    (when (and edited (not codegemma-lsp--current))
      (codegemma-lsp--schedule))))


;;; Commands

(defun codegemma-lsp-accept ()
  "Insert the ghost text and tell the server it was accepted."
  (interactive)
  (let ((ghost codegemma-lsp--current))
    (unless ghost
      (user-error "No CodeGemma completion is shown"))
    (let ((anchor (marker-position (codegemma-lsp--ghost-anchor ghost)))
          (end (marker-position (codegemma-lsp--ghost-end ghost)))
          (text (codegemma-lsp--ghost-text ghost))
          (command (codegemma-lsp--ghost-command ghost))
          (server (codegemma-lsp--ghost-server ghost)))
      (codegemma-lsp--clear)
      (goto-char anchor)
      (delete-region anchor (max anchor end))
      (insert text)
      (when (and command (jsonrpc-running-p server))
        (codegemma-lsp--execute server command)))))

(defconst codegemma-lsp--accept-partial-command "codegemma.acceptPartial"
  "The server's command that counts a partial accept.")

(defun codegemma-lsp--next-part (text kind)
  "The start of TEXT that a partial accept of KIND (`word' or `line') takes."
  (let ((regexps
         (if (eq kind 'word)
             '("\\`[ \t\n]*[[:alnum:]_]+" "\\`[ \t\n]*[^[:alnum:]_ \t\n]+")
           ;; At the end of a line, the line break and the next line: the key
           ;; always moves on.
           '("\\`\n?[^\n]*"))))
    (or (cl-loop for regexp in regexps
                 when (string-match regexp text) return (match-string 0 text))
        text)))

(defun codegemma-lsp--accept-part (kind)
  "Insert the next KIND (`word' or `line') of the ghost text; show the rest."
  (let ((ghost codegemma-lsp--current))
    (unless ghost
      (user-error "No CodeGemma completion is shown"))
    (let* ((text (codegemma-lsp--ghost-text ghost))
           (part (codegemma-lsp--next-part text kind)))
      (if (>= (length part) (length text))
          (codegemma-lsp-accept)
        (goto-char (codegemma-lsp--ghost-anchor ghost))
        (insert part)
        ;; As when the part is typed: the ghost moves past it and keeps the rest.
        (codegemma-lsp--follow ghost)
        (codegemma-lsp--send-partial-accept ghost kind part)))))

(defun codegemma-lsp--send-partial-accept (ghost kind part)
  "Tell GHOST's server that PART, its next KIND, was accepted.
The item's accept command names the suggestion."
  (let* ((command (codegemma-lsp--ghost-command ghost))
         (arguments (plist-get command :arguments))
         (target (and (> (length arguments) 0) (elt arguments 0)))
         (server (codegemma-lsp--ghost-server ghost)))
    (when (and target (jsonrpc-running-p server))
      (codegemma-lsp--execute
       server
       (list :command codegemma-lsp--accept-partial-command
             :arguments (vector (list :uri (plist-get target :uri)
                                      :id (plist-get target :id)
                                      :kind (symbol-name kind)
                                      :chars (length part))))))))

(defun codegemma-lsp-accept-word ()
  "Insert the next word of the ghost text and keep the rest shown."
  (interactive)
  (codegemma-lsp--accept-part 'word))

(defun codegemma-lsp-accept-line ()
  "Insert the rest of the ghost text's current line and keep the rest shown."
  (interactive)
  (codegemma-lsp--accept-part 'line))

(defun codegemma-lsp--execute (server command)
  "Run the LSP COMMAND on SERVER without waiting for its result."
  ;; Not `eglot-execute-command' (obsolete in Emacs 30) nor `eglot-execute'
  ;; (absent from eglot 1.9): both also wait for the reply.
  (let ((arguments (plist-get command :arguments)))
    (jsonrpc-async-request
     server :workspace/executeCommand
     (append (list :command (plist-get command :command))
             (and arguments (list :arguments arguments)))
     :success-fn #'ignore
     :error-fn (lambda (error)
                 (message "[codegemma-lsp] %s failed: %s"
                          (plist-get command :command) (plist-get error :message)))
     :timeout-fn #'ignore)))

(defun codegemma-lsp-dismiss ()
  "Hide the ghost text and drop any completion still on its way."
  (interactive)
  (cl-incf codegemma-lsp--request-seq)
  (codegemma-lsp--clear))

(defun codegemma-lsp-complete ()
  "Ask for a completion at point now."
  (interactive)
  (unless (codegemma-lsp--server)
    (user-error "No codegemma-lsp server manages this buffer"))
  (codegemma-lsp--clear)
  (codegemma-lsp--request t))

(defun codegemma-lsp-stats ()
  "Show how many completions the server has shown and how many were accepted."
  (interactive)
  (let ((server (or (codegemma-lsp--server)
                    (user-error "No codegemma-lsp server manages this buffer"))))
    (message "codegemma-lsp: %S"
             (jsonrpc-request server :codegemma/stats (make-hash-table)))))


;;; Mode line

(defun codegemma-lsp--refresh-numbers (server &optional wait)
  "Ask SERVER for the user's own numbers, at most every 10 s unless WAIT.
With WAIT, wait for them (a second at most)."
  (let ((known (gethash server codegemma-lsp--numbers)))
    (cond
     (wait
      (let ((reply (ignore-errors
                     (jsonrpc-request server :codegemma/stats (make-hash-table) :timeout 1))))
        (when reply
          (puthash server (cons (float-time) (plist-get reply :user)) codegemma-lsp--numbers))))
     ((or (null known) (> (- (float-time) (car known)) 10))
      (puthash server (cons (float-time) (cdr known)) codegemma-lsp--numbers)
      (jsonrpc-async-request
       server :codegemma/stats (make-hash-table)
       :success-fn (lambda (reply)
                     (puthash server (cons (float-time) (plist-get reply :user))
                              codegemma-lsp--numbers))
       :error-fn #'ignore
       :timeout-fn #'ignore)))))

(defun codegemma-lsp--format-numbers (numbers)
  "The user's own NUMBERS (a `codegemma/stats' :user plist) in one line, or \"\"."
  (if (null numbers)
      ""
    (let ((latency (plist-get numbers :latency_ms)))
      (format (concat "shown %s, accepted %s (+%s partly), %s chars kept 30 s of %s; "
                      "p50 %.0f ms, p95 %.0f ms; %.0f%% from cache or joins")
              (plist-get numbers :shown) (plist-get numbers :accepted)
              (plist-get numbers :accepted_partially)
              (plist-get numbers :retained_chars) (plist-get numbers :accepted_chars)
              (or (plist-get latency :p50) 0) (or (plist-get latency :p95) 0)
              (* 100 (or (plist-get numbers :cache_or_join_share) 0))))))

(defun codegemma-lsp-status ()
  "The last `codegemma/status' of this buffer's server, its latency, your numbers.
A plist (:state :model :message :progress :slow :latency :numbers),
:latency in seconds, :numbers the `codegemma/stats' :user plist."
  (let ((server (and (bound-and-true-p eglot--managed-mode) (eglot-current-server))))
    (and server
         (append (gethash server codegemma-lsp--statuses)
                 (list :latency (gethash server codegemma-lsp--latencies)
                       :numbers (cdr (gethash server codegemma-lsp--numbers)))))))

(defun codegemma-lsp-show-status ()
  "Say whether the model is ready, which it is, the last latency, your numbers."
  (interactive)
  (let ((server (and (bound-and-true-p eglot--managed-mode) (eglot-current-server))))
    (when (and server (jsonrpc-running-p server))
      (codegemma-lsp--refresh-numbers server t)))
  (let ((status (codegemma-lsp-status)))
    (if (null status)
        (message "codegemma-lsp: no server manages this buffer")
      (let ((latency (plist-get status :latency))
            (numbers (codegemma-lsp--format-numbers (plist-get status :numbers))))
        (message "codegemma-lsp: %s, model %s%s; last completion: %s%s"
                 (or (plist-get status :state) "starting")
                 (or (plist-get status :model) "-")
                 (let ((text (plist-get status :message)))
                   (if (and (stringp text) (not (string-empty-p text))) (concat " (" text ")") ""))
                 (if latency (format "%.0f ms" (* 1000 latency)) "none yet")
                 (if (string-empty-p numbers) "" (concat "\nyours: " numbers)))))))

(defun codegemma-lsp--lighter ()
  "The mode-line text: \" CG\", the model state unless it is ready, \"…\" while asking."
  (let* ((server (codegemma-lsp--server))
         (status (and server (gethash server codegemma-lsp--statuses)))
         (state (plist-get status :state))
         (progress (plist-get status :progress))
         (latency (and server (gethash server codegemma-lsp--latencies))))
    (propertize
     (concat " CG" (cond ((null server) ":off")
                         ((null state) ":starting")
                         ((and (equal state "downloading") (numberp progress))
                          (format ":downloading %d%%" progress))
                         ((equal state "ready")
                          (concat (if (plist-get status :slow) ":slow" "")
                                  (if codegemma-lsp--pending "…" "")))
                         (t (concat ":" state))))
     'help-echo (if status
                    (format "codegemma-lsp: %s\nmodel: %s\n%s%s%s" state
                            (or (plist-get status :model) "-")
                            (or (plist-get status :message) "")
                            (if latency
                                (format "\nlast completion: %.0f ms" (* 1000 latency))
                              "")
                            (let ((numbers (codegemma-lsp--format-numbers
                                            (cdr (gethash server codegemma-lsp--numbers)))))
                              (if (string-empty-p numbers) "" (concat "\nyours: " numbers))))
                  "codegemma-lsp: no server"))))


;;; Generating code from an instruction

(defcustom codegemma-lsp-generate-timeout 600
  "Seconds to wait for generated code before giving up on it."
  :type 'number)

(defconst codegemma-lsp--generate-command "codegemma.generate")

(defvar codegemma-lsp--generating nil
  "Generations under way: a list of (SERVER . REQUEST-ID).")

(defvar codegemma-lsp--generate-tokens nil
  "Progress tokens of generations under way: a list of (SERVER . TOKEN).")

(defvar codegemma-lsp-generated-functions nil
  "Functions called with the server's answer to each generation.
The answer is a plist (:applied t :lines N :whole BOOL), or
\(:applied :json-false :message TEXT) when nothing was inserted.")

;; Later eglot asks before applying any edit a server sends unless this is nil.
(defvar eglot-confirm-server-edits)

(defun codegemma-lsp--generate-argument (beg end instruction)
  "The codegemma.generate argument for the region BEG..END and INSTRUCTION."
  (append (eglot--TextDocumentIdentifier)
          (list :range (list :start (eglot--pos-to-lsp-position beg)
                             :end (eglot--pos-to-lsp-position end)))
          (and instruction (not (string-empty-p instruction))
               (list :instruction instruction))))

(defun codegemma-lsp--generate-async (server argument)
  "Send codegemma.generate with ARGUMENT to SERVER; the edit comes back by itself."
  ;; Eglot sends edits after a pause: the server must have this buffer as it is now.
  (eglot--signal-textDocument/didChange)
  (let* ((entry (cons server nil))
         (done (lambda () (setq codegemma-lsp--generating
                                (delq entry codegemma-lsp--generating))))
         (sent (jsonrpc-async-request
                server :workspace/executeCommand
                (list :command codegemma-lsp--generate-command
                      :arguments (vector argument))
                :success-fn
                (lambda (result)
                  (funcall done)
                  (when (eq (plist-get result :applied) t)
                    (message "[codegemma-lsp] inserted %s line%s of generated code"
                             (plist-get result :lines)
                             (if (eql (plist-get result :lines) 1) "" "s")))
                  (run-hook-with-args 'codegemma-lsp-generated-functions result))
                :error-fn
                (lambda (error)
                  (funcall done)
                  (unless (eql (plist-get error :code) -32800) ; cancelled on purpose
                    (message "[codegemma-lsp] generate failed: %s" (plist-get error :message)))
                  (run-hook-with-args 'codegemma-lsp-generated-functions
                                      (list :applied :json-false
                                            :message (plist-get error :message))))
                :timeout codegemma-lsp-generate-timeout
                :timeout-fn
                (lambda ()
                  (funcall done)
                  (message "[codegemma-lsp] no generated code after %ss"
                           codegemma-lsp-generate-timeout)))))
    ;; Old jsonrpc returns (ID TIMER), newer nil: without an id, the progress token cancels.
    (setcdr entry (and (consp sent) (car sent)))
    (push entry codegemma-lsp--generating)))

(defun codegemma-lsp-generate (&optional instruction)
  "Generate code with the server's instruction model.
With an active region, the code replaces the region, whose text is
the instruction.  Otherwise the code goes below the comment at or
above point, which says what to write.  With a prefix argument,
read the INSTRUCTION from the minibuffer instead.  The server
inserts the code through `workspace/applyEdit'; generation goes on
in the background, and `codegemma-lsp-generate-cancel' stops it."
  (interactive
   (list (and current-prefix-arg (read-string "Generate code that: "))))
  (let ((server (or (codegemma-lsp--server)
                    (user-error "No codegemma-lsp server manages this buffer")))
        (beg (if (use-region-p) (region-beginning) (point)))
        (end (if (use-region-p) (region-end) (point))))
    (codegemma-lsp--generate-async
     server (codegemma-lsp--generate-argument beg end instruction))
    (when (use-region-p)
      (deactivate-mark))
    (message "[codegemma-lsp] generating code...")))

(defun codegemma-lsp-generate-cancel ()
  "Stop the code generations under way; nothing is inserted."
  (interactive)
  (dolist (entry codegemma-lsp--generating)
    (when (cdr entry)
      (jsonrpc-notify (car entry) :$/cancelRequest (list :id (cdr entry)))))
  (dolist (entry codegemma-lsp--generate-tokens)
    (jsonrpc-notify (car entry) :window/workDoneProgress/cancel (list :token (cdr entry))))
  (setq codegemma-lsp--generating nil
        codegemma-lsp--generate-tokens nil))

(cl-defmethod eglot-handle-notification :before
  ((server codegemma-lsp-server) (_method (eql $/progress)) &key token value &allow-other-keys)
  "Remember the progress TOKEN of SERVER's generations, so they can be cancelled."
  (when (and (stringp token) (string-prefix-p "codegemma-generate-" token))
    (pcase (plist-get value :kind)
      ("begin" (push (cons server token) codegemma-lsp--generate-tokens))
      ("end" (setq codegemma-lsp--generate-tokens
                   (cl-remove token codegemma-lsp--generate-tokens
                              :key #'cdr :test #'equal))))))

;; Eglot runs a code action's command with a request that waits for the
;; answer (and gives up after `jsonrpc-default-request-timeout'), which
;; for generation would freeze Emacs while the model writes: the command
;; of "Generate code from this comment" goes out asynchronously instead.
(cl-defmethod eglot-execute-command :around
  ((server codegemma-lsp-server) command arguments)
  "Run codegemma.generate on SERVER without waiting; other commands as usual."
  (if (equal (format "%s" command) codegemma-lsp--generate-command)
      (codegemma-lsp--generate-async server (aref (vconcat arguments) 0))
    (cl-call-next-method)))

(when (fboundp 'eglot-execute)
  (cl-defmethod eglot-execute :around ((server codegemma-lsp-server) action)
    "Run codegemma.generate on SERVER without waiting; other actions as usual."
    (let ((command (or (plist-get action :command) action)))
      (if (and (listp command)
               (equal (plist-get command :command) codegemma-lsp--generate-command))
          (codegemma-lsp--generate-async
           server (aref (vconcat (plist-get command :arguments)) 0))
        (cl-call-next-method)))))

;; The user asked for the code, in the buffer at hand: no "Proceed?" before
;; the server's edit, as eglot otherwise asks (by default in eglot 1.9).
(cl-defmethod eglot-handle-request :around
  ((_server codegemma-lsp-server) (_method (eql workspace/applyEdit)) &rest _)
  "Apply codegemma-lsp's edits without asking for confirmation."
  (let ((eglot-confirm-server-initiated-edits nil)
        (eglot-confirm-server-edits nil))
    (cl-call-next-method)))


;;; The mode

(defun codegemma-lsp--when-shown (command)
  "COMMAND while ghost text is shown, else nil (the key's other binding)."
  (and codegemma-lsp--current command))

(defvar codegemma-lsp-mode-map
  (let ((map (make-sparse-keymap))
        (accept '(menu-item "" codegemma-lsp-accept :filter codegemma-lsp--when-shown))
        (dismiss '(menu-item "" codegemma-lsp-dismiss :filter codegemma-lsp--when-shown))
        (word '(menu-item "" codegemma-lsp-accept-word :filter codegemma-lsp--when-shown))
        (line '(menu-item "" codegemma-lsp-accept-line :filter codegemma-lsp--when-shown))
        (next '(menu-item "" codegemma-lsp-next :filter codegemma-lsp--when-shown))
        (previous '(menu-item "" codegemma-lsp-previous :filter codegemma-lsp--when-shown)))
    (define-key map (kbd "TAB") accept)
    (define-key map (kbd "<tab>") accept)
    (define-key map (kbd "M-f") word)
    (define-key map (kbd "C-e") line)
    (define-key map (kbd "M-]") next)
    (define-key map (kbd "M-[") previous)
    (define-key map (kbd "C-g") dismiss)
    map)
  "Keys of `codegemma-lsp-mode'; each one acts only while ghost text is shown.")

;;;###autoload
(define-minor-mode codegemma-lsp-mode
  "Show CodeGemma completions from codegemma-lsp as ghost text.

After a pause in typing (`codegemma-lsp-idle-delay'), the
completion appears after point.  The Tab key accepts it, M-f
accepts its next word, C-e the rest of its line, M-] and M-[ show
the server's other candidates, and the key of `keyboard-quit'
dismisses it; while none is shown, these keys do what they did
before.  Typing its next characters keeps the
rest shown; any other edit dismisses it.  `codegemma-lsp-complete'
asks at once.

Eglot must manage the buffer with codegemma-lsp; with
`codegemma-lsp-auto-start' this mode starts it."
  :lighter (:eval (codegemma-lsp--lighter))
  :keymap codegemma-lsp-mode-map
  (cond
   (codegemma-lsp-mode
    (setq codegemma-lsp--last-tick (buffer-chars-modified-tick))
    (add-hook 'post-command-hook #'codegemma-lsp--post-command nil t)
    ;; Only in modes the server is registered for: elsewhere eglot would
    ;; start some other server, or complain that it knows none.
    (when (and codegemma-lsp-auto-start buffer-file-name
               (codegemma-lsp--language-id major-mode)
               (not (bound-and-true-p eglot--managed-mode)))
      (eglot-ensure)))
   (t
    (remove-hook 'post-command-hook #'codegemma-lsp--post-command t)
    (when (timerp codegemma-lsp--timer)
      (cancel-timer codegemma-lsp--timer))
    (setq codegemma-lsp--timer nil)
    (codegemma-lsp-dismiss))))

(codegemma-lsp-register)

;;; Eglot versions
;;
;; What differs between eglot 1.9 (Emacs 28 + GNU ELPA) and later ones, and
;; how this file copes:
;;
;; - Language ids: in 1.9 a server has one id, the first buffer's; a method
;;   on `eglot--language-id' for `codegemma-lsp-server' gives each buffer its
;;   own.  Later eglot (`eglot--languageId', in 1.16 at least) reads the
;;   per-mode :language-id by itself.
;; - `eglot--server-capable' became `eglot-server-capable' (1.16):
;;   `codegemma-lsp--capable-p' calls whichever exists.
;; - `eglot-execute-command' is declared obsolete for Emacs 30 in favour of
;;   `eglot-execute' (absent from 1.9), and both wait for the reply:
;;   accepting sends workspace/executeCommand with `jsonrpc-async-request'.
;; - Contact functions get (INTERACTIVE) in 1.9 and may get (INTERACTIVE
;;   PROJECT) later: `codegemma-lsp--contact' takes both as optional.
;; - Unchanged across versions and used here: `eglot-current-server',
;;   `eglot--TextDocumentPositionParams' and `eglot--lsp-position-to-point'
;;   (both follow the negotiated position encoding in 1.12+),
;;   `eglot--signal-textDocument/didChange', `eglot-initialization-options',
;;   and `eglot-handle-notification' with (eql METHOD) and &key params.
;; - `jsonrpc-async-request' returns (ID TIMER) in old jsonrpc and nil in
;;   new: nothing here uses its value.

(provide 'codegemma-lsp)
;;; codegemma-lsp.el ends here
