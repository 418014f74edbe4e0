;;; driver.el --- eglot + ctx-lsp in batch Emacs, for tests/editors/test_emacs.py  -*- lexical-binding: t -*-
;;
;; emacs --batch -l driver.el
;; Environment: CTX_TEST_SNIPPETS (the README's Emacs Lisp), CTX_TEST_FILE (a Python file in
;; a git repository with a staged change), CTX_TEST_OUT (JSON observations).
(require 'package)
(package-initialize)
(require 'eglot)
(require 'json)
(require 'python)

(defvar ctx-test-obs nil)
(defun ctx-test-put (key value) (push (cons key value) ctx-test-obs))
(defun ctx-test-finish (code)
  (with-temp-file (getenv "CTX_TEST_OUT")
    (insert (json-encode ctx-test-obs)))
  (kill-emacs code))

(condition-case err
    (progn
      (ctx-test-put "emacs" emacs-version)
      (load (getenv "CTX_TEST_SNIPPETS") nil t)
      (setq eglot-sync-connect 60
            eglot-connect-timeout 60)
      (find-file (getenv "CTX_TEST_FILE"))
      (apply #'eglot (eglot--guess-contact))
      (let ((server (eglot-current-server)))
        (ctx-test-put "server" (plist-get (eglot--server-info server) :name))
        ;; completion: the suggestion as a completion item at the end of a new function
        (goto-char (point-max))
        (insert "\ndef mul(a, b):\n    ")
        (let* ((capf (eglot-completion-at-point))
               (candidates (all-completions "" (nth 2 capf))))
          (ctx-test-put "completions" (vconcat (mapcar #'substring-no-properties candidates))))
        ;; code actions for the first line
        (let ((actions (eglot-code-actions (point-min) (save-excursion
                                                         (goto-char (point-min))
                                                         (line-end-position)))))
          (ctx-test-put "actions" (vconcat (mapcar (lambda (a) (plist-get a :title)) actions))))
        ;; the README's commands
        (ctx-lsp-show-context)
        (ctx-test-put "context" (with-current-buffer "*ctx context*" (buffer-string)))
        (with-temp-buffer
          (setq default-directory (file-name-directory (getenv "CTX_TEST_FILE")))
          (ctx-lsp-commit-message)
          (ctx-test-put "commit" (buffer-string)))
        ;; chat: the answer streams into *ctx chat*; then the restored conversation
        (let ((reports 0))
          (advice-add 'ctx-lsp-chat--insert :after (lambda (&rest _) (cl-incf reports)))
          (goto-char (point-min))
          (set-mark (point))
          (forward-line 2)
          (activate-mark)
          (ctx-lsp-chat "What does add do?")
          (with-timeout (60 (error "no chat answer within 60 s"))
            (while ctx-lsp-chat--token (accept-process-output nil 0.05)))
          (ctx-test-put "chat" (with-current-buffer "*ctx chat*" (buffer-string)))
          (ctx-test-put "chat_inserts" reports))
        (ctx-lsp-chat-history)
        (ctx-test-put "chat_history" (with-current-buffer "*ctx chat*" (buffer-string))))
      (ctx-test-finish 0))
  (error
   (ctx-test-put "error" (format "%S" err))
   (ctx-test-finish 1)))
