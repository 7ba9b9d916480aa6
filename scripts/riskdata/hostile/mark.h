/* Markers for scripts/riskdata: a stat of a path that does not exist. The
 * compactor labels the caller's events (and its descendants') between
 * "begin" and "end" with the technique; the marker calls are dropped. */
#include <sys/stat.h>
static void rd_mark(const char *what) {
	struct stat st;
	char p[256];
	snprintf(p, sizeof p, "/archangel-riskdata/%s", what);
	stat(p, &st);
}
#define RD_BEGIN(tech) rd_mark("begin/" tech)
#define RD_END() rd_mark("end")
