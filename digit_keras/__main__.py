from digit_keras.cli import main

raise SystemExit(main())
