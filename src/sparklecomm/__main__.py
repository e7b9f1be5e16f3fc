from sparklecomm.cli import main

main()
