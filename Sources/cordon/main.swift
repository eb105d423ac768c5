import CordonCLI

CordonCommand.main()
