/* zt_dl_lib.c - the small library dlopen()ed by dlopen.c (built as libzt_dl.so). */
static int counter;
static int table[256] = { 1, 2, 3 };

int zt_dl_bump(int by);
int zt_dl_get(void);
int zt_dl_table_sum(void);

int zt_dl_bump(int by)
{
	counter += by;
	table[counter & 255] += by;
	return counter;
}

int zt_dl_get(void)
{
	return counter;
}

int zt_dl_table_sum(void)
{
	int s = 0;
	for (int i = 0; i < 256; i++)
		s += table[i];
	return s;
}
