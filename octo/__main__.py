from octo.cli import main

raise SystemExit(main())
