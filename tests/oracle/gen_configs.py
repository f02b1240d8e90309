#!/usr/bin/env python3
"""Writes the xl config corpus tests/oracle/configs/*.cfg.

Each case is a name and the exact bytes of the file, so odd bytes (CR, NUL,
BOM, non-UTF-8) are spelled out here and survive editors.  Re-run after
adding a case:  python3 tests/oracle/gen_configs.py
Files in configs/ that this script does not know are left alone, so a case
may also be added by hand.
"""
import os

CASES = {}


def case(name, data):
    if isinstance(data, str):
        data = data.encode("latin-1")
    assert name not in CASES, name
    CASES[name] = data


# ---------------------------------------------------------------- basics
case("empty-file", b"")
case("whitespace-only-spaces-tabs", b"   \t  \t")
case("whitespace-only-with-newlines", b"  \n\t\n\n   \n")
case("newline-only", b"\n")
case("single-assignment", b'name = "vm1"\n')
case("single-assignment-no-final-newline", b'name = "vm1"')
case("number-assignment-no-final-newline", b"memory = 1024")
case("list-assignment-no-final-newline", b"vcpus = [1, 2]")
case("no-spaces-around-equals", b'name="vm1"\nmemory=512\n')
case("leading-spaces-before-key", b'   name = "vm1"\n\tmemory = 2\n')
case("tabs-everywhere", b'\tname\t=\t"vm1"\t\n\tx\t=\t[\t1\t,\t2\t]\t\n')
case("blank-lines-between", b'\n\n\nname = "a"\n\n\nmemory = 3\n\n')
case("many-keys-in-order", b'a = 1\nb = "2"\nc = [3]\nd = \'4\'\n')

# -------------------------------------------------------------- comments
case("comment-at-line-start", b"# a comment\nname = \"x\"\n")
case("comment-after-value", b'name = "x" # trailing comment\n')
case("comment-after-value-no-space", b'memory = 512#tight\n')
case("comment-after-list", b"cpus = [1, 2] # two\n")
case("comment-indented", b"   \t# indented\nx = 1\n")
case("comment-only-file", b"# just a comment\n")
case("comment-only-no-newline", b"# just a comment")
case("comment-final-without-newline", b'name = "x"\n# final comment')
case("comment-after-value-at-eof", b"x = 1 # c")
case("comment-after-value-at-eof-no-space", b"x = 1 #c")
case("comment-lone-hash-at-eof", b"x = 1\n#")
case("comment-hash-space-at-eof", b"x = 1\n# ")
case("comment-inside-list", b"x = [ 1, # first\n  2 # second\n]\n")
case("comment-after-open-bracket", b"x = [ # open\n 1 ]\n")
case("comment-between-key-and-value", b"x = # nothing\n1\n")
case("comment-hash-inside-double-string", b'x = "a # not a comment"\n')
case("comment-hash-inside-single-string", b"x = 'a # not a comment'\n")
case("comment-with-quotes", b"# it's \"quoted\n x = 1\n")
case("comment-with-non-utf8", b"# caf\xe9 \xff\xfe\nx = 1\n")
case("comment-with-nul", b"# a\x00b\nx = 1\n")
case("comment-with-cr", b"# a\r\nx = 1\n")
case("comment-ending-in-backslash", b"# continued? \\\nx = 1\n")
case("comment-many-hashes", b"#### header ####\nx = 1\n##\n")
case("comment-after-semicolon", b"x = 1; # c\ny = 2\n")

# ----------------------------------------------------------------- quotes
case("string-double", b'x = "hello world"\n')
case("string-single", b"x = 'hello world'\n")
case("string-empty-double", b'x = ""\n')
case("string-empty-single", b"x = ''\n")
case("string-double-inside-single", b"x = 'say \"hi\"'\n")
case("string-single-inside-double", b'x = "it\'s"\n')
case("string-with-tabs-inside", b'x = "a\tb"\n')
case("string-with-cr-inside", b'x = "a\rb"\n')
case("string-with-formfeed-inside", b'x = "a\x0cb"\n')
case("string-non-utf8-bytes", b'x = "\xff\xfe\x80abc"\n')
case("string-utf8", 'x = "caf\u00e9 \u2603"\n'.encode("utf-8"))
case("string-with-nul-inside", b'x = "a\x00b"\n')
case("string-with-nul-inside-single", b"x = 'a\x00b'\n")
case("string-unterminated-double", b'x = "abc\ny = 1\n')
case("string-unterminated-single", b"x = 'abc\ny = 1\n")
case("string-unterminated-at-eof", b'x = "abc')
case("string-raw-newline-inside", b'x = "ab\ncd"\n')
case("string-adjacent-strings", b'x = "a""b"\n')
case("string-adjacent-mixed-quotes", b"x = \"a\"'b'\n")
case("string-then-number", b'x = "a" 1\n')
case("string-key-quoted", b'"x" = 1\n')
case("string-long-value", b'x = "' + b"abcdefghij" * 10000 + b'"\n')
case("string-with-brackets-commas", b'x = "[a, b] = c; d"\n')

# ---------------------------------------------------------------- escapes
for q, qn in ((b'"', "double"), (b"'", "single")):
    def s(body, q=q):
        return b"x = " + q + body + q + b"\n"
    case(f"escape-newline-in-{qn}", s(b"a\\nb"))
    case(f"escape-tab-in-{qn}", s(b"a\\tb"))
    case(f"escape-backslash-in-{qn}", s(b"a\\\\b"))
    case(f"escape-single-quote-in-{qn}", s(b"a\\'b"))
    case(f"escape-double-quote-in-{qn}", s(b'a\\"b'))
    case(f"escape-hex-in-{qn}", s(b"\\x41"))
    case(f"escape-octal-in-{qn}", s(b"a\\101b"))
    case(f"escape-unknown-q-in-{qn}", s(b"a\\qb"))
    case(f"escape-trailing-backslash-in-{qn}", s(b"ab\\"))
case("escape-all-letters", b'x = "\\a\\b\\f\\n\\r\\t\\v"\n')
case("escape-hex-lowercase", b'x = "\\x4a"\n')
case("escape-hex-three-digits", b'x = "a\\x414b"\n')
case("escape-hex-one-digit", b'x = "a\\x4"\n')
case("escape-hex-no-digits", b'x = "a\\x"\n')
case("escape-hex-non-digits", b'x = "a\\xzz"\n')
case("escape-octal-zero", b'x = "a\\0b"\n')
case("escape-octal-two-zeros", b'x = "a\\00b"\n')
case("escape-octal-three-digits", b'x = "a\\123b"\n')
case("escape-octal-four-digits", b'x = "a\\1234b"\n')
case("escape-octal-one-digit-at-end", b'x = "a\\1"\n')
case("escape-octal-then-nine", b'x = "a\\19b"\n')
case("escape-octal-then-99", b'x = "a\\199b"\n')
case("escape-octal-then-space-digit", b'x = "a\\1 5b"\n')
case("escape-octal-then-plus-digit", b'x = "a\\1+5b"\n')
case("escape-octal-then-minus-digit", b'x = "a\\7-0b"\n')
case("escape-octal-then-letters", b'x = "a\\1ab"\n')
case("escape-octal-seven", b'x = "\\777x"\n')
case("escape-eight", b'x = "a\\8b"\n')
case("escape-nine", b'x = "a\\9b"\n')
case("escape-space", b'x = "a\\ b"\n')
case("escape-uppercase-n", b'x = "a\\Nb"\n')
case("escape-u-unicode", b'x = "\\u0041"\n')
case("escape-backslash-newline", b'x = "a\\\nb"\n')
case("escape-backslash-at-eof", b'x = "a\\')
case("escape-nonascii-after-backslash", b'x = "a\\\xe9b"\n')
case("escape-two-backslashes-then-quote", b'x = "a\\\\"\n')
case("escape-in-list-item", b'x = ["a\\tb", \'c\\nd\']\n')
case("escape-error-on-line-3", b'a = 1\nb = 2\nc = "\\q"\n')

# ---------------------------------------------------------------- numbers
case("number-decimal", b"x = 42\n")
case("number-zero", b"x = 0\n")
case("number-leading-zeros", b"x = 007\n")
case("number-hex-lowercase", b"x = 0x1f\n")
case("number-hex-uppercase-digits", b"x = 0x1F\n")
case("number-hex-uppercase-x", b"x = 0X1f\n")
case("number-negative", b"x = -1\n")
case("number-plus-sign", b"x = +1\n")
case("number-float", b"x = 1.5\n")
case("number-exponent", b"x = 1e5\n")
case("number-with-hex-letters", b"x = 12abc\n")
case("number-then-letter-g", b"x = 1g\n")
case("number-with-underscore", b"x = 1_000\n")
case("number-huge", b"x = 123456789012345678901234567890\n")
case("number-x-only-digits", b"x = 0xxx\n")
case("number-in-list", b"x = [0x10, 007, 1e3]\n")
case("number-memory-with-unit", b"memory = 1024M\n")

# ------------------------------------------------------------ identifiers
case("ident-with-dots-underscores-digits", b"a.b_c9.d = 1\n")
case("ident-single-letter", b"z = 1\n")
case("ident-uppercase-key", b"Name = 1\n")
case("ident-all-uppercase-key", b"NAME = 1\n")
case("ident-uppercase-inside", b"nAme = 1\n")
case("ident-leading-underscore", b"_x = 1\n")
case("ident-leading-digit", b"1x = 1\n")
case("ident-with-dash", b"on-crash = 1\n")
case("ident-trailing-dot", b"x. = 1\n")
case("ident-very-long", b"k" + b"_a1." * 2000 + b" = 1\n")
case("ident-as-value", b"x = yes\n")
case("ident-non-ascii", b"caf\xe9 = 1\n")

# ------------------------------------------------------------- separators
case("semicolon-separator", b"x = 1; y = 2\n")
case("semicolon-no-spaces", b"x=1;y=2;z=3\n")
case("semicolon-double", b"x = 1;; y = 2\n")
case("semicolon-alone", b";\n")
case("semicolon-leading", b"; x = 1\n")
case("semicolon-at-eof", b"x = 1;")
case("semicolon-then-newline", b"x = 1;\ny = 2;\n")
case("two-statements-no-separator", b"x = 1 y = 2\n")
case("semicolon-inside-list", b"x = [1; 2]\n")
case("semicolon-after-equals", b"x = ; 1\n")

# ------------------------------------------------------------ equals sign
case("equals-without-value", b"x =\n")
case("equals-without-value-line-3", b"a = 1\n\nx =\ny = 2\n")
case("equals-without-value-at-eof", b"a = 1\nx =")
case("equals-without-key", b"= 1\n")
case("key-without-equals", b"x 1\n")
case("key-alone", b"x\n")
case("key-alone-at-eof", b"a = 1\nx")
case("double-equals", b"x == 1\n")
case("equals-equals-spaced", b"x = = 1\n")
case("equals-chain", b"x = 1 = 2\n")
case("value-without-key", b'"abc"\n')
case("list-without-key", b"[1, 2]\n")
case("newline-between-key-and-equals", b"x\n= 1\n")
case("newline-between-equals-and-value", b"x =\n1\n")
case("colon-instead-of-equals", b"x: 1\n")

# -------------------------------------------------------------------- +=
case("plus-equals-string-string", b'x = "ab"\nx += "cd"\n')
case("plus-equals-number-number", b"x = 1\nx += 2\n")
case("plus-equals-list-list", b"x = [1, 2]\nx += [3]\n")
case("plus-equals-list-empty", b"x = [1]\nx += []\n")
case("plus-equals-empty-list", b"x = []\nx += [1]\n")
case("plus-equals-absent-string", b'x += "a"\n')
case("plus-equals-absent-list", b"x += [1]\n")
case("plus-equals-string-then-list", b'x = "a"\nx += [1]\n')
case("plus-equals-list-then-string", b'x = [1]\nx += "a"\n')
case("plus-equals-list-then-string-line-5", b'x = [1]\n\n\n\nx += "a"\n')
case("plus-equals-list-then-string-multiline", b'x = "a"\n\nx += [\n1,\n2\n]\n')
case("plus-equals-three-times", b'x = "a"\nx += "b"\nx += "c"\n')
case("plus-equals-lists-three-times", b"x = [1]\nx += [2]\nx += [3, 4]\n")
case("plus-equals-after-reassign", b'x = "a"\nx = "b"\nx += "c"\n')
case("assign-after-plus-equals", b'x = "a"\nx += "b"\nx = "c"\n')
case("plus-equals-no-spaces", b'x="a"\nx+="b"\n')
case("plus-space-equals", b'x = "a"\nx + = "b"\n')
case("plus-equals-nested-lists", b"x = [[1]]\nx += [[2], 3]\n")
case("plus-equals-semicolon", b'x = "a"; x += "b"\n')
case("plus-equals-same-line-mismatch", b'x = "a"; x += [1]\n')
case("plus-equals-other-key", b'x = "a"\ny += "b"\n')
case("minus-equals", b"x = 1\nx -= 1\n")

# ------------------------------------------------------------ repetition
case("repeated-key-last-wins", b'x = "a"\nx = "b"\n')
case("repeated-key-type-change", b'x = "a"\nx = [1]\n')
case("repeated-key-list-then-string", b'x = [1]\nx = "a"\n')
case("repeated-key-many", b"".join(b"x = %d\n" % i for i in range(50)))

# ------------------------------------------------------------------ lists
case("list-simple", b"x = [1, 2, 3]\n")
case("list-strings", b"x = ['a', \"b\"]\n")
case("list-empty", b"x = []\n")
case("list-empty-with-spaces", b"x = [   ]\n")
case("list-empty-with-newline", b"x = [\n]\n")
case("list-only-comma", b"x = [,]\n")
case("list-leading-comma", b"x = [, 1]\n")
case("list-trailing-comma", b"x = [1, 2,]\n")
case("list-double-comma", b"x = [1,, 2]\n")
case("list-two-trailing-commas", b"x = [1,,]\n")
case("list-missing-comma", b"x = [1 2]\n")
case("list-nested", b"x = [1, [2, 3], 4]\n")
case("list-nested-empty", b"x = [[]]\n")
case("list-nested-deep", b"x = [[[[['deep']]]]]\n")
case("list-multiline", b"x = [\n  'a',\n  'b'\n]\n")
case("list-multiline-trailing-comma", b"x = [\n  'a',\n  'b',\n]\n")
case("list-newline-everywhere", b"x = [\n\n1\n\n,\n\n2\n\n,\n\n]\n")
case("list-newline-before-comma", b"x = [1\n, 2]\n")
case("list-newline-before-open-bracket", b"x =\n[1]\n")
case("list-unterminated", b"x = [1, 2\ny = 3\n")
case("list-unterminated-at-eof", b"x = [1, 2,\n")
case("list-unterminated-at-eof-no-newline", b"x = [1, 2")
case("list-unterminated-nested", b"x = [[1, 2]\n")
case("list-extra-close", b"x = [1]]\n")
case("list-close-alone", b"]\n")
case("list-of-lists-multiline", b"x = [\n [1, 2],\n [3,\n  4],\n]\n")
case("list-with-comments-and-blank-lines", b"x = [\n # c1\n 'a', # c2\n\n # c3\n 'b'\n # c4\n]\n")
case("list-5000-items", b"x = [" + b", ".join(b"'%d'" % i for i in range(5000)) + b"]\n")
case("list-item-ident", b"x = [a, b]\n")
case("list-error-on-line-4", b"x = [\n 1,\n 2,\n 3 4,\n]\n")
case("list-close-then-value", b"x = [1] 2\n")

# ---------------------------------------------------- line endings, bytes
case("crlf-line-endings", b'name = "vm1"\r\nmemory = 512\r\n')
case("crlf-on-line-3", b"a = 1\nb = 2\nc = 3\r\nd = 4\n")
case("lone-cr-line-endings", b"a = 1\rb = 2\r")
case("lone-cr-at-eof", b"x = 1\r")
case("lone-cr-mid-line", b"x = 1\r y = 2\n")
case("cr-before-comment-newline", b"x = 1 # c\r\n")
case("utf8-bom", b'\xef\xbb\xbfname = "vm1"\n')
case("utf8-bom-only", b"\xef\xbb\xbf")
case("nul-between-statements", b"x = 1\n\x00\ny = 2\n")
case("nul-at-eof", b"x = 1\n\x00")
case("nul-after-value", b"x = 1\x00\n")
case("nul-only", b"\x00")
case("non-utf8-byte-at-line-start", b"x = 1\n\xff\ny = 2\n")
case("non-utf8-byte-at-eof", b"x = 1\n\xff")
case("formfeed-between-tokens", b"x =\x0c1\n")
case("formfeed-on-own-line", b"x = 1\n\x0c\ny = 2\n")
case("vertical-tab-between-tokens", b"x =\x0b1\n")
case("at-sign-at-eof", b"x = 1\n@")
case("at-sign-mid-line", b"x = 1 @ 2\n")
case("dollar-sign-line-2", b"x = 1\n$y = 2\n")
case("two-lexical-errors-same-line", b"x = @ @\n")
case("lexical-error-then-syntax-error", b"x = 1\ny = @\nz = = 2\n")
case("syntax-error-then-lexical-error", b"x = = 1\ny = @\n")
case("backtick-at-eof", b"x = 1 `")

# --------------------------------------------------------- python-ish
case("python-concat", b"x = 'a' + 'b'\n")
case("python-import", b"import os\nx = 1\n")
case("python-call", b"x = os.path('a')\n")
case("python-tuple", b"x = (1, 2)\n")
case("python-dict", b"x = {'a': 1}\n")

# ---------------------------------------------------------- line numbers
case("error-after-many-blank-lines", b"\n" * 40 + b"x = = 1\n")
case("error-after-comments", b"# a\n# b\n# c\nx = [1,,]\n")
case("error-on-last-line-no-newline", b"a = 1\nb = 2\nc = = 3")
case("error-unexpected-newline-after-comment-lines", b"# one\n# two\nx =  # three\n")
case("error-in-second-of-two-lines-list", b"x = [1,\n2 3]\n")

# ------------------------------------------------------- realistic files
case("realistic-pv-domain", b"""# PV guest with a passed-through NIC
name = "pv-guest"
type = "pv"
kernel = "/boot/vmlinuz-6.1.0-18-amd64"
ramdisk = "/boot/initrd.img-6.1.0-18-amd64"
extra = "root=/dev/xvda1 console=hvc0"
memory = 2048
maxmem = 4096
vcpus = 2
on_poweroff = "destroy"
on_reboot = "restart"
on_crash = "restart"
disk = [ 'phy:/dev/vg0/pv-guest-root,xvda1,w',
         'phy:/dev/vg0/pv-guest-swap,xvda2,w' ]
vif = [ 'mac=00:16:3e:00:00:01,bridge=xenbr0' ]
pci = [ '0000:03:00.0', '0000:03:00.1,permissive=1' ]
pci_permissive = 1
""")
case("realistic-hvm-domain", b"""# HVM guest with a GPU
name = 'hvm-gpu'
type = 'hvm'
firmware = 'ovmf'
memory = 8192
vcpus = 4
cpus = "2-5"
disk = [ 'format=raw, vdev=xvda, access=rw, target=/dev/vg0/win10' ]
vif = [ 'type=ioemu, model=e1000, bridge=xenbr0' ]
vga = "none"
gfx_passthru = 0
pci = [
    '01:00.0,rdm_policy=relaxed',   # GPU
    '01:00.1@7,msitranslate=1',     # its audio function
    '0000:05:00.*',
]
pci_msitranslate = 1
pci_power_mgmt = 1
rdm = "strategy=host,policy=relaxed"
usb = 1
usbdevice = [ 'tablet' ]
serial = 'pty'
""")
case("realistic-hvm-crlf", b"name = 'win'\r\ntype = 'hvm'\r\npci = [ '01:00.0' ]\r\n")
case("realistic-debian-example", b"""#
# Configuration file for the Xen instance debian, created
# by xen-tools 4.9.
#

#
#  Kernel + memory size
#
kernel      = '/boot/vmlinuz-6.1.0-18-amd64'
extra       = 'elevator=noop'
ramdisk     = '/boot/initrd.img-6.1.0-18-amd64'

vcpus       = '1'
memory      = '512'


#
#  Disk device(s).
#
root        = '/dev/xvda2 ro'
disk        = [
                  'file:/home/xen/domains/debian/disk.img,xvda2,w',
                  'file:/home/xen/domains/debian/swap.img,xvda1,w',
              ]


#
#  Physical volumes
#


#
#  Hostname
#
name        = 'debian'

#
#  Networking
#
vif         = [ 'ip=192.168.1.10 ,mac=00:16:3E:8D:0C:E9' ]

#
#  Behaviour
#
on_poweroff = 'destroy'
on_reboot   = 'restart'
on_crash    = 'restart'
""")
case("realistic-pci-plus-equals", b"""name = "vm"
pci = [ '0000:03:00.0' ]
pci += [ '0000:04:00.0,seize=1' ]
extra = "console=hvc0"
extra += " quiet"
""")
case("realistic-pci-empty", b'name = "vm"\npci = []\n')
case("realistic-pci-one-per-line-no-trailing-comma", b"""pci = [
  '0000:03:00.0',
  '0000:03:00.1'
]
""")
case("realistic-pci-name-form", b"pci = [ 'name=gpu0', 'bdf=0000:03:00.0,vslot=4' ]\n")
case("realistic-pci-nested-list", b"pci = [ ['0000:03:00.0'], '0000:04:00.0' ]\n")
case("realistic-pci-string-not-list", b"pci = '0000:03:00.0'\n")
case("realistic-device-model-args", b"device_model_args = [ \"-device\", \"virtio-rng-pci\" ]\ndevice_model_override = \"/usr/bin/qemu-system-i386\"\n")
case("realistic-cpuid-and-viridian", b"cpuid = \"host,tm=0,sse3=0\"\nviridian = [ \"base\", \"freq\" ]\n")
case("realistic-semicolons-one-line", b"name='a'; memory=256; vcpus=1; pci=['03:00.0']\n")

# ------------------------------------------- a bad byte as the very last byte
case("quote-alone-at-eof-after-value", b"x = 1 \"")
case("quote-alone-after-equals-at-eof", b"x = \"")
case("minus-at-eof", b"x = 1 -")
case("bad-byte-then-newline", b"x = 1 @\ny = 2\n")
case("bad-byte-then-newline-then-syntax-error", b"x = 1 @\ny = = 2\n")
case("bad-two-bytes-at-eof", b"x = 1\n@@")
case("backslash-outside-string", b"x = 1 \\\ny = 2\n")
case("eof-error-after-blank-lines", b"x = [1,\n\n\n")
case("eof-error-after-comment-lines", b"x = [1,\n# a\n# b\n")
case("nul-string-after-earlier-error", b"x = = 1\ny = \"a\x00b\"\n")
case("nul-string-before-later-error", b"y = \"a\x00b\"\nx = = 1\n")
case("escape-octal-three-zeros", b'x = "a\\000b"\n')
case("escape-octal-then-tab-digit", b'x = "a\\1\t5b"\n')
case("escape-octal-then-space-at-end", b'x = "a\\1 "\n')
case("escape-octal-then-plus-at-end", b'x = "a\\1+"\n')
case("escape-octal-window-three", b'x = "\\12345"\n')
case("plus-equals-mismatch-list-spans-lines", b'x = "a"\nx += [\n1\n]\n')
case("plus-equals-mismatch-then-newline-comment", b'x = [1]\nx += "a" # c\n')
case("plus-equals-at-eof-mismatch", b'x = [1]\nx += "a"')
case("error-newline-token-on-line-1-comment", b"x = # c\n")
case("lexerr-hash-inside-run", b"x = 1 @#c\n")
case("tab-after-bad-byte", b"x = 1 @\tz\n")

# ------------------------------------------------ end of input, more forms
case("eof-error-after-dropped-byte", b"x = [1, @")
case("eof-error-newline-then-dropped-byte", b"x = [1,\n@")
case("eof-error-blank-line-then-dropped-byte", b"x = [1,\n\n@")
case("eof-error-after-semicolon-and-key", b"x = 1;\ny")
case("eof-error-after-plus-equals", b"x +=")
case("eof-error-inside-nested-list-lines", b"x = [\n [1,\n  2\n")
case("comment-lone-hash-after-value-at-eof", b"x = 1 #")
case("statements-without-final-newline-semicolon", b"x = 1; y = 2")
case("number-then-string", b'x = 1"a"\n')
case("string-then-ident", b'x = "a"b\n')
case("comment-right-after-list", b"x = [1]# c\n")
case("semicolon-then-comment-no-space", b"x = 1 ;# c\n")
case("cr-inside-list", b"x = [1,\r\n2]\n")
case("lexerr-run-swallows-quote", b'x = @"a b"\ny = 1\n')
case("plus-equals-nested-onto-list", b"x = [1]\nx += [[2]]\n")
case("plus-equals-onto-empty-string", b'x = ""\nx += ""\n')
case("key-like-pci-dot", b"pci.x = 1\npci = ['07:00.0']\n")

# ------------------------------------------------- octal window, more forms
case("escape-octal-zero-then-three-digits", b'x = "\\0123x"\n')
case("escape-octal-vtab-digit", b'x = "a\\1\x0b5b"\n')
case("escape-octal-space-minus-digit", b'x = "a\\1 -5b"\n')
case("escape-octal-two-spaces-digit", b'x = "a\\1  5b"\n')
case("escape-octal-three-spaces-digit", b'x = "a\\1   5b"\n')
case("escape-octal-raw-cr-digit", b'x = "a\\1\r5b"\n')
case("escape-octal-then-escape", b'x = "a\\1\\\\5"\n')
case("escape-octal-one-digit-before-quote", b'x = "ab\\12"\n')
case("escape-octal-two-digits-before-quote", b'x = "ab\\123"\n')
case("escape-octal-in-single-before-quote", b"x = 'ab\\123'\n")
case("escape-octal-twice", b'x = "\\101\\102c"\n')
case("escape-first-error-wins", b'x = "\\q\\x41"\n')

# --------------------------------------------- nesting depth (bison stack)
case("list-nested-depth-100", b"x = " + b"[" * 100 + b"'a'" + b"]" * 100 + b"\n")
case("list-nested-depth-1000", b"x = " + b"[" * 1000 + b"]" * 1000 + b"\n")
case("list-nested-depth-4996", b"x = " + b"[" * 4996 + b"]" * 4996 + b"\n")
case("list-nested-depth-4997", b"x = " + b"[" * 4997 + b"]" * 4997 + b"\n")
case("list-nested-depth-20000", b"x = " + b"[" * 20000 + b"]" * 20000 + b"\n")
case("list-nested-depth-4997-one-per-line", b"x = " + b"[\n" * 4997 + b"]" * 4997 + b"\n")
case("list-20000-items-one-line", b"x = [" + b"1," * 20000 + b"]\n")

# ------------------------------------------------------------- odd bytes, more
case("nul-inside-final-comment-no-newline", b"x = 1\n# a\x00b")
case("nul-inside-identifier", b"ab\x00c = 1\n")
case("bom-on-line-2", b"x = 1\n\xef\xbb\xbfy = 2\n")
case("crlf-only", b"\r\n")
case("escape-backslash-cr", b'x = "a\\\rb"\n')
case("escape-backslash-nul", b'x = "a\\\x00b"\n')
case("number-trailing-dot", b"x = 1.\n")
case("number-trailing-dot-at-eof", b"x = 1.")
case("number-0x-alone", b"x = 0x\n")
case("plus-plus-equals", b"x ++= 1\n")
case("reassign-after-list-plus-equals", b'x = [1]\nx += [2]\nx = "s"\nx += "t"\n')
case("error-line-1000", b"a = 1\n" * 999 + b"b = [1 2]\n")


def main():
    here = os.path.dirname(os.path.abspath(__file__))
    out = os.path.join(here, "configs")
    os.makedirs(out, exist_ok=True)
    for name, data in CASES.items():
        with open(os.path.join(out, name + ".cfg"), "wb") as f:
            f.write(data)
    print(f"wrote {len(CASES)} files to {out}")


if __name__ == "__main__":
    main()
