#ifndef _GNU_SOURCE
#define _GNU_SOURCE
#endif
#include <stddef.h>
#include <string.h>
#include <pthread.h>
#include <sys/socket.h>
#include "CStatorSys.h"

_Static_assert(sizeof(CStatorSys_mmsghdr) == sizeof(struct mmsghdr), "CStatorSys_mmsghdr size differs from mmsghdr");
_Static_assert(offsetof(CStatorSys_mmsghdr, msg_len) == offsetof(struct mmsghdr, msg_len), "msg_len offset differs");

const int CStatorSys_MSG_WAITFORONE = MSG_WAITFORONE;
const int CStatorSys_SO_RXQ_OVFL = SO_RXQ_OVFL;
const int CStatorSys_RXQ_OVFL_CONTROL_BYTES = CMSG_SPACE(sizeof(uint32_t));

int CStatorSys_recvmmsg(int fd, CStatorSys_mmsghdr *vec, unsigned int vlen, int flags, struct timespec *timeout) {
    return recvmmsg(fd, (struct mmsghdr *)vec, vlen, flags, timeout);
}

int CStatorSys_sendmmsg(int fd, CStatorSys_mmsghdr *vec, unsigned int vlen, int flags) {
    return sendmmsg(fd, (struct mmsghdr *)vec, vlen, flags);
}

int CStatorSys_rxq_ovfl(const struct msghdr *msg, uint32_t *drops) {
    for (struct cmsghdr *c = CMSG_FIRSTHDR((struct msghdr *)msg); c != NULL; c = CMSG_NXTHDR((struct msghdr *)msg, c)) {
        if (c->cmsg_level == SOL_SOCKET && c->cmsg_type == SO_RXQ_OVFL) {
            memcpy(drops, CMSG_DATA(c), sizeof(uint32_t));
            return 1;
        }
    }
    return 0;
}

void CStatorSys_set_thread_name(const char *name) {
    char cut[16];
    strncpy(cut, name, sizeof(cut) - 1);
    cut[sizeof(cut) - 1] = 0;
    pthread_setname_np(pthread_self(), cut);
}
