/* How long pasta takes to configure a fresh network namespace, and how much CPU it burns.
 * Makes a network namespace, subscribes to its route and address netlink groups, spawns
 * pasta (kiln's arguments, see crates/kiln-net/src/private.rs, plus any given here) on it and
 * prints, in ms from the fork: first address, IPv4 default route, IPv6 default route; then
 * pasta's CPU time from its start to 100 ms after the IPv6 route (us, /proc/PID/schedstat).
 * Used by bench/pasta-ready.sh. Needs root, pasta, and a host with both default routes. */
#define _GNU_SOURCE
#include <sched.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <fcntl.h>
#include <time.h>
#include <signal.h>
#include <sys/wait.h>
#include <sys/socket.h>
#include <linux/netlink.h>
#include <linux/rtnetlink.h>
static double now(){struct timespec t;clock_gettime(CLOCK_MONOTONIC,&t);return t.tv_sec*1e3+t.tv_nsec/1e6;}
int main(int argc,char**argv){
  int host=open("/proc/self/ns/net",O_RDONLY);
  if(unshare(CLONE_NEWNET)){perror("unshare");return 1;}
  int ns=open("/proc/self/ns/net",O_RDONLY);
  int nl=socket(AF_NETLINK,SOCK_RAW|SOCK_CLOEXEC,NETLINK_ROUTE);
  struct sockaddr_nl sa={.nl_family=AF_NETLINK,.nl_groups=RTMGRP_IPV4_ROUTE|RTMGRP_IPV6_ROUTE|RTMGRP_IPV4_IFADDR};
  bind(nl,(void*)&sa,sizeof sa);
  setns(host,CLONE_NEWNET);
  char fdp[64];snprintf(fdp,64,"/proc/self/fd/%d",ns);
  char *args[64];int n=0;
  args[n++]="/usr/bin/pasta";
  const char *base[]={"--config-net","--foreground","--quiet","--runas","0","--tcp-ports","none","--udp-ports","none","--tcp-ns","none","--udp-ns","none","--no-map-gw",0};
  for(int i=0;base[i];i++)args[n++]=(char*)base[i];
  for(int i=1;i<argc;i++)args[n++]=argv[i];
  args[n++]="--netns";args[n++]=fdp;args[n]=0;
  double t0=now();
  pid_t p=fork();
  if(!p){int dn=open("/dev/null",O_RDWR);dup2(dn,2);execv("/usr/bin/pasta.avx2",args);_exit(127);}
  char buf[65536];double addr=0,r4=0,r6=0;
  while(!(r4&&r6)){
    int len=recv(nl,buf,sizeof buf,0); if(len<=0)break;
    for(struct nlmsghdr*h=(void*)buf;NLMSG_OK(h,len);h=NLMSG_NEXT(h,len)){
      if(h->nlmsg_type==RTM_NEWADDR&&!addr)addr=now()-t0;
      if(h->nlmsg_type==RTM_NEWROUTE){struct rtmsg*r=NLMSG_DATA(h);
        if(r->rtm_dst_len==0&&r->rtm_family==AF_INET)r4=now()-t0;
        if(r->rtm_dst_len==0&&r->rtm_family==AF_INET6&&r->rtm_table==RT_TABLE_MAIN)r6=now()-t0;}
    }
  }
  usleep(100000);
  char sp[64];snprintf(sp,64,"/proc/%d/schedstat",p);FILE*f=fopen(sp,"r");unsigned long ut=0,st=0;
  if(f){fscanf(f,"%lu",&ut);fclose(f);}
  kill(p,SIGKILL);waitpid(p,0,0);
  printf("%.2f %.2f %.2f %lu\n",addr,r4,r6,ut/1000);
  return 0;
}
