/* The kernel's vDSO image as a readable file (vdso_image.c). */
#ifndef PPX_VDSO_IMAGE_H
#define PPX_VDSO_IMAGE_H

#include <stdbool.h>

/* The name targets give their vDSO mapping (preload/mappings.c). */
#define VDSO_MAPPING_NAME "[vdso]"

/* A descriptor on a copy of this process's vDSO, positioned at 0; -1 when
 * there is none. */
int vdso_image_fd(void);

#endif
