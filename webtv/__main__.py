from webtv.cli import main

raise SystemExit(main())
