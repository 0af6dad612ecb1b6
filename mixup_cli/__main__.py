from mixup_cli.cli import main

main()
