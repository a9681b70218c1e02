/* SPDX-License-Identifier: GPL-3.0-or-later */
#include "codechat-test-ws.h"
