#!/bin/sh
# dracut initqueue/finished hook of the netboot module (shell flavour only):
# the main loop is not done while netboot still has to attach the root.
! [ -e /run/initramfs/netboot/wanted ] || [ -e /run/netboot/root ]
