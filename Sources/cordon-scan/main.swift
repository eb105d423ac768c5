import CordonScanCLI

ScanToolCommand.main()
