/* pgsess.h as the Go binding includes it: the library's handle types given a body.
 *
 * pgsess.h declares each handle as an incomplete struct: what is inside is the library's, and
 * C code only ever holds pointers to one. cgo cannot tell whether an incomplete struct holds Go
 * pointers, so it checks every such pointer passed to C, and that check allocates: one heap
 * object per cgo call (Go 1.19), 7 of a native round trip's 10 allocations. With a body cgo
 * sees that the type holds no pointers and passes it as it is. The body is never used for a
 * layout: the binding only passes on the pointers the library returns, and never makes, copies
 * or dereferences a handle. Every file of the binding that uses the library includes this
 * header, not pgsess.h, so cgo sees one definition of each.
 */
#ifndef PGSESS_GO_HANDLES_H
#define PGSESS_GO_HANDLES_H

#include <pgsess.h>

struct pgsess_batch { unsigned char opaque_; };
struct pgsess_batch_results { unsigned char opaque_; };
struct pgsess_copy { unsigned char opaque_; };
struct pgsess_error { unsigned char opaque_; };
struct pgsess_notification { unsigned char opaque_; };
struct pgsess_options { unsigned char opaque_; };
struct pgsess_pending { unsigned char opaque_; };
struct pgsess_request { unsigned char opaque_; };
struct pgsess_results { unsigned char opaque_; };
struct pgsess_session { unsigned char opaque_; };
struct pgsess_stream { unsigned char opaque_; };
struct pgsess_tx { unsigned char opaque_; };

#endif
