/*
 * version.h: the version of cptokens, for the module (the C files of csrc/) and its loader
 * (csrc/loader/core.c), which checks that the module it opens is the same version.
 * scripts/check-rockspec.sh checks it against the rockspec and lua/cptokens/init.lua.
 */
#ifndef CPT_VERSION_H
#define CPT_VERSION_H

#ifndef CPT_VERSION /* a spec builds a loader of another version with -DCPT_VERSION=... */
#define CPT_VERSION "0.2.0"
#endif

#endif
