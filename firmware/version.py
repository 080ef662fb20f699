# The firmware's one version: BootNotification's firmwareVersion, diag's first line, and the
# version an update (OTA) bundle is compared with. Semantic versioning; bump it in the commit
# that changes what a user or a CSMS can see.
VERSION = "0.8.0"
