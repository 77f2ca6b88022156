/* A statically linked program: nothing can be preloaded into it, and
 * ppx record must say so. */
#include <stdio.h>
#include <stdlib.h>

int main(void)
{
    char *p = malloc(32);
    puts(p != NULL ? "static hello" : "static hello, no memory");
    free(p);
    return 0;
}
