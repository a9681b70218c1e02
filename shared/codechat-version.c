/* SPDX-License-Identifier: GPL-3.0-or-later */
#define G_LOG_DOMAIN "codechat-shared"

#include "config.h"

#include "codechat-version.h"

const gchar *
codechat_version(void)
{
	return PACKAGE_VERSION;
}

/* the `server` field of `welcome` */
const gchar *
codechat_server_string(void)
{
	return "codechatd/" PACKAGE_VERSION;
}
