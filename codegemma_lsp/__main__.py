from codegemma_lsp.cli import main

raise SystemExit(main())
